import { generateKeyPairSync, randomBytes, sign, type KeyObject } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * Google-shaped ID tokens signed with key pairs the tests generate, and the certs files of
 * every format the verifier reads, so that nothing is fetched from Google.
 */

export interface SigningKey {
  readonly kid: string;
  readonly alg: "RS256" | "ES256";
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
}

export function newSigningKey(kid: string, alg: SigningKey["alg"] = "RS256"): SigningKey {
  const pair = alg === "RS256" ? generateKeyPairSync("rsa", { modulusLength: 2048 }) : generateKeyPairSync("ec", { namedCurve: "P-256" });
  return { kid, alg, ...pair };
}

export const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/** The claims of a Google ID token for this audience, valid for an hour from now. */
export function googleClaims(audience: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  const now = nowSeconds();
  return {
    iss: "https://accounts.google.com",
    aud: audience,
    azp: audience,
    sub: "110248495921238986420",
    email: "ada@example.com",
    email_verified: true,
    iat: now,
    exp: now + 3600,
    ...overrides,
  };
}

const base64url = (value: unknown): string => Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");

/** A compact JWS over the claims; `header` replaces or adds header fields (`alg` included, for malformed tokens). */
export function signIdToken(key: SigningKey, claims: Record<string, unknown>, header: Record<string, unknown> = {}): string {
  const signed = `${base64url({ alg: key.alg, kid: key.kid, typ: "JWT", ...header })}.${base64url(claims)}`;
  const signature =
    key.alg === "RS256" ? sign("sha256", Buffer.from(signed), key.privateKey) : sign("sha256", Buffer.from(signed), { key: key.privateKey, dsaEncoding: "ieee-p1363" });
  return `${signed}.${signature.toString("base64url")}`;
}

/** The same token with one character of its signature changed. */
export function tamperSignature(token: string): string {
  const at = token.lastIndexOf(".") + 5;
  return token.slice(0, at) + (token[at] === "A" ? "B" : "A") + token.slice(at + 1);
}

export const publicKeyPem = (key: SigningKey): string => key.publicKey.export({ type: "spki", format: "pem" }) as string;

/** Google's v3 format: a JWKS. */
export function jwks(keys: readonly SigningKey[]): string {
  return JSON.stringify({ keys: keys.map((key) => ({ ...key.publicKey.export({ format: "jwk" }), kid: key.kid, alg: key.alg, use: "sig" })) });
}

/** Google's v1 format: `{kid: PEM certificate}`. */
export function pemMap(keys: readonly SigningKey[]): string {
  return JSON.stringify(Object.fromEntries(keys.map((key) => [key.kid, selfSignedCertificate(key)])));
}

/** A temporary directory for certs files, removed by `remove()`. */
export function certsDir(): { path(name: string, text: string): string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), "passthrough-certs-"));
  return {
    path(name, text) {
      const file = join(dir, name);
      writeFileSync(file, text);
      return file;
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

// A minimal DER encoder, enough for one self-signed X.509 v3 certificate like the ones Google publishes.
function der(tag: number, ...contents: Buffer[]): Buffer {
  const body = Buffer.concat(contents);
  const length = [];
  for (let n = body.length; n > 0; n >>= 8) length.unshift(n & 0xff);
  const header = body.length < 0x80 ? [body.length] : [0x80 | length.length, ...length];
  return Buffer.concat([Buffer.from([tag, ...header]), body]);
}
const sequence = (...contents: Buffer[]) => der(0x30, ...contents);
const utcTime = (date: Date) => der(0x17, Buffer.from(date.toISOString().replace(/[-:T]/g, "").slice(2, 14) + "Z"));
const oids = {
  sha256WithRsa: Buffer.from("06092a864886f70d01010b", "hex"),
  ecdsaWithSha256: Buffer.from("06082a8648ce3d040302", "hex"),
  commonName: Buffer.from("0603550403", "hex"),
};

/** A PEM certificate for the key, signed by itself, valid from a day ago for two weeks. */
export function selfSignedCertificate(key: SigningKey): string {
  const algorithm = key.alg === "RS256" ? sequence(oids.sha256WithRsa, Buffer.from("0500", "hex")) : sequence(oids.ecdsaWithSha256);
  const name = sequence(der(0x31, sequence(oids.commonName, der(0x0c, Buffer.from(key.kid)))));
  const serial = randomBytes(8);
  serial[0] &= 0x7f;
  const day = 24 * 3600 * 1000;
  const tbs = sequence(
    der(0xa0, der(0x02, Buffer.from([2]))),
    der(0x02, serial),
    algorithm,
    name,
    sequence(utcTime(new Date(Date.now() - day)), utcTime(new Date(Date.now() + 14 * day))),
    name,
    key.publicKey.export({ type: "spki", format: "der" }),
  );
  const certificate = sequence(tbs, algorithm, der(0x03, Buffer.from([0]), sign("sha256", tbs, key.privateKey)));
  const lines = certificate.toString("base64").match(/.{1,64}/g) ?? [];
  return `-----BEGIN CERTIFICATE-----\n${lines.join("\n")}\n-----END CERTIFICATE-----\n`;
}
