import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { OAuth2Client } from "google-auth-library";
import { afterAll, describe, expect, it } from "vitest";
import { parseAuthorization } from "../../src/auth/credentials.js";
import { createGoogleIdTokenVerifier, type GoogleIdTokenVerifierOptions } from "../../src/auth/google-id-token.js";
import type { Credential } from "../../src/auth/verifier.js";
import { ConfigError, parseConfig } from "../../src/config/load.js";
import { certsDir, googleClaims, jwks, newSigningKey, nowSeconds, pemMap, publicKeyPem, selfSignedCertificate, signIdToken, tamperSignature } from "./support/id-tokens.js";
import { runVerifierContract } from "./verifier.contract.js";

const audience = "1234567890-abc.apps.googleusercontent.com";
const subject = "110248495921238986420";
const key = newSigningKey("key-1");
const second = newSigningKey("key-2");
const ecKey = newSigningKey("key-ec", "ES256");
/** The kid of a listed key, but another key pair: its signatures must not verify. */
const impostor = newSigningKey("key-1");
const unlisted = newSigningKey("key-9");

const dir = certsDir();
afterAll(() => dir.remove());
const files = {
  jwks: dir.path("certs-v3.json", jwks([key, second, ecKey])),
  pemMap: dir.path("certs-v1.json", pemMap([key, second])),
  certificates: dir.path("certs.pem", selfSignedCertificate(second) + selfSignedCertificate(key)),
  publicKeys: dir.path("keys.pem", publicKeyPem(second) + publicKeyPem(key)),
};

/** A local stand-in for Google's v1 certs endpoint, counting its requests. */
async function serveCerts(status = 200): Promise<{ url: string; requests(): number; close(): void }> {
  let requests = 0;
  const server = createServer((_, res) => {
    requests++;
    res.writeHead(status, { "content-type": "application/json", "cache-control": "public, max-age=300" }).end(pemMap([key, second]));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/oauth2/v1/certs`, requests: () => requests, close: () => server.close() };
}
const clientFor = (url: string) => new OAuth2Client({ endpoints: { oauth2FederatedSignonPemCertsUrl: url } });
const googleEndpoint = await serveCerts();
afterAll(() => googleEndpoint.close());

const bearer = (token: string): Credential => parseAuthorization(`Bearer ${token}`).credential!;
const claims = (overrides: Record<string, unknown> = {}) => googleClaims(audience, { sub: subject, ...overrides });
const now = nowSeconds();
const valid = signIdToken(key, claims());
const [validHeader, validPayload, validSignature] = valid.split(".");

const samples = {
  valid: bearer(valid),
  expired: bearer(signIdToken(key, claims({ iat: now - 7200, exp: now - 3600 }))),
  unknown: bearer(signIdToken(impostor, claims())),
  revoked: undefined,
  malformed: bearer(`${Buffer.from("not json").toString("base64url")}.${validPayload}.${validSignature}`),
  foreign: { scheme: "bearer", format: "api-key", value: "ptk_contract_notasecretatall" },
} as const;

const sources: Record<string, Partial<GoogleIdTokenVerifierOptions>> = {
  "a JWKS file (Google's v3 format)": { certsFile: files.jwks },
  "a {kid: certificate} file (Google's v1 format)": { certsFile: files.pemMap },
  "a PEM file of certificates": { certsFile: files.certificates },
  "a PEM file of public keys": { certsFile: files.publicKeys },
  "Google's endpoint (a local stand-in)": { client: clientFor(googleEndpoint.url) },
};
for (const [label, source] of Object.entries(sources)) {
  runVerifierContract({
    name: `Google ID tokens, keys from ${label}`,
    newVerifier: () => createGoogleIdTokenVerifier({ audiences: [audience], ...source }),
    credentials: samples,
    expectedPrincipal: { kind: "google", id: subject },
  });
}

describe("Google ID token verifier", () => {
  const verifier = createGoogleIdTokenVerifier({ audiences: [audience, "second-client"], certsFile: files.jwks });

  it("gives the subject and the verified email, with every provider and no limits of its own", async () => {
    expect(await verifier.verify(samples.valid)).toEqual({
      principal: { kind: "google", id: subject, email: "ada@example.com", allowedProviders: null, admin: false, limits: undefined },
    });
    const unverified = await verifier.verify(bearer(signIdToken(key, claims({ email_verified: false }))));
    expect(unverified.principal).not.toHaveProperty("email");
  });

  it.each([
    ["a token expired less than the clock skew ago", signIdToken(key, claims({ iat: now - 3600, exp: now - 60 }))],
    ["the issuer written without https://", signIdToken(key, claims({ iss: "accounts.google.com" }))],
    ["the second audience", signIdToken(key, claims({ aud: "second-client" }))],
    ["a token of the second key", signIdToken(second, claims())],
    ["an ES256 token", signIdToken(ecKey, claims())],
  ])("accepts %s", async (_, token) => {
    expect((await verifier.verify(bearer(token))).principal?.id).toBe(subject);
  });

  // One row per failure google-auth-library reports (src/auth/google-id-token.ts relies on its messages), then ours.
  it.each([
    ["an expired token", signIdToken(key, claims({ iat: now - 7200, exp: now - 3600 })), "expired", "has expired"],
    ["another audience", signIdToken(key, claims({ aud: "someone-else" })), "unknown", "another audience"],
    ["another issuer", signIdToken(key, claims({ iss: "https://accounts.example.com" })), "unknown", "not issued by Google"],
    ["a kid that is not in the file", signIdToken(unlisted, claims()), "unknown", "not among Google's certificates"],
    ["a tampered signature", tamperSignature(valid), "unknown", "signature does not verify"],
    ["a tampered payload", `${validHeader}.${Buffer.from(JSON.stringify(claims({ sub: "someone" }))).toString("base64url")}.${validSignature}`, "unknown", "signature does not verify"],
    ["another key's signature under a listed kid", signIdToken(impostor, claims()), "unknown", "signature does not verify"],
    ["a token issued in the future", signIdToken(key, claims({ iat: now + 3600, exp: now + 7200 })), "unknown", "not valid yet"],
    ["a token valid for more than a day", signIdToken(key, claims({ exp: now + 2 * 86400 })), "unknown", "more than a day"],
    ["a token without exp", signIdToken(key, claims({ exp: undefined })), "malformed", "iat or exp"],
    ["a token without sub", signIdToken(key, claims({ sub: undefined })), "malformed", "no subject"],
    ["an HS256 token", signIdToken(key, claims(), { alg: "HS256" }), "malformed", "RS256 or ES256"],
    ["an unsigned token (alg none)", signIdToken(key, claims(), { alg: "none" }), "malformed", "RS256 or ES256"],
    ["a header without kid", signIdToken(key, claims(), { kid: undefined }), "malformed", "names no key (kid)"],
    ["a payload that is not JSON", `${validHeader}.${Buffer.from("[1,").toString("base64url")}.${validSignature}`, "malformed", "not base64url-encoded JSON"],
  ])("refuses %s", async (_, token, reason, detail) => {
    const { refusal } = await verifier.verify(bearer(token));
    expect(refusal?.reason).toBe(reason);
    expect(refusal?.detail).toContain(detail);
    expect(refusal?.detail).not.toContain(token.split(".")[2]);
  });

  describe("allowed emails and hosted domains", () => {
    const restricted = createGoogleIdTokenVerifier({ audiences: [audience], certsFile: files.jwks, emails: ["Ada@Example.com"], domains: ["corp.example"] });

    it.each([
      ["an allowed email, in another case", { email: "ADA@example.com" }],
      ["an account of an allowed hosted domain", { email: "bob@corp.example", hd: "corp.example" }],
      ["an allowed email of another hosted domain", { hd: "other.example" }],
    ])("admit %s", async (_, overrides) => {
      expect((await restricted.verify(bearer(signIdToken(key, claims(overrides))))).principal?.id).toBe(subject);
    });

    it.each([
      ["an allowed email that is not verified", { email_verified: false }, "the token's email is not verified"],
      ["an email not in the list", { email: "eve@example.com" }, "the token's account is not among the allowed emails and domains"],
      ["an email of the domain without the hd claim", { email: "mallory@corp.example" }, "the token's account is not among the allowed emails and domains"],
      ["another hosted domain", { email: "eve@other.example", hd: "other.example" }, "the token's account is not among the allowed emails and domains"],
      ["a token without email", { email: undefined, email_verified: undefined }, "the token's account is not among the allowed emails and domains"],
    ])("refuse %s", async (_, overrides, detail) => {
      expect((await restricted.verify(bearer(signIdToken(key, claims(overrides))))).refusal).toEqual({ reason: "unknown", detail });
    });
  });

  describe("Google's certificates, when there is no certsFile", () => {
    it("are fetched once and cached as the endpoint's max-age says", async () => {
      const endpoint = await serveCerts();
      try {
        const fetching = createGoogleIdTokenVerifier({ audiences: [audience], client: clientFor(endpoint.url) });
        for (let i = 0; i < 3; i++) expect((await fetching.verify(samples.valid)).principal?.id).toBe(subject);
        expect(endpoint.requests()).toBe(1);
      } finally {
        endpoint.close();
      }
    });

    it("out of reach, make the call UNAVAILABLE rather than a refusal", async () => {
      const endpoint = await serveCerts(404);
      try {
        const fetching = createGoogleIdTokenVerifier({ audiences: [audience], client: clientFor(endpoint.url) });
        const error = await Promise.resolve(fetching.verify(samples.valid)).catch((thrown: unknown) => thrown);
        expect(error).toBeInstanceOf(ConnectError);
        expect((error as ConnectError).code).toBe(Code.Unavailable);
        expect((error as ConnectError).message).not.toContain(validSignature);
      } finally {
        endpoint.close();
      }
    });
  });
});

describe("createGoogleIdTokenVerifier options", () => {
  const privatePem = key.privateKey.export({ type: "pkcs8", format: "pem" }) as string;
  const jwk = JSON.parse(jwks([key])).keys[0];
  it.each([
    ["no audience", { audiences: [] }, "auth.google.audiences: at least one audience"],
    ["an empty audience", { audiences: [""] }, "auth.google.audiences[0]: an empty audience"],
    ["an empty email list", { emails: [] }, "auth.google.emails: an empty list"],
    ["an email that is not one", { emails: ["ada"] }, "auth.google.emails[0]: not an email address"],
    ["a domain with @", { domains: ["@corp.example"] }, "auth.google.domains[0]: not a domain"],
    ["a certs file that does not exist", { certsFile: `${files.jwks}.missing` }, "cannot read"],
    ["a PEM file with a private key", { certsFile: dir.path("private.pem", privatePem) }, "holds a private key"],
    ["a JWKS with a private key", { certsFile: dir.path("private.json", jwks([key]).replace('"kty"', `"d":"AQAB","kty"`)) }, "keys[0] is a private key"],
    ["a JWKS key without kid", { certsFile: dir.path("nokid.json", JSON.stringify({ keys: [{ ...jwk, kid: undefined }] })) }, "keys[0] has no kid"],
    ["a JWKS naming a kid twice", { certsFile: dir.path("twice.json", JSON.stringify({ keys: [jwk, jwk] })) }, "names a kid twice"],
    ["an empty JWKS", { certsFile: dir.path("empty.json", '{"keys": []}') }, "holds no keys"],
    ["a v1 map whose value is no PEM", { certsFile: dir.path("v1.json", '{"key-1": "MIIB"}') }, 'the entry of kid "key-1" is not one PEM'],
    ["a file that is neither JSON nor PEM", { certsFile: dir.path("garbage.txt", "hello") }, "neither JSON"],
    ["a file that is broken JSON", { certsFile: dir.path("broken.json", "{ keys: ") }, "is not valid JSON"],
  ])("refuse %s when the verifier is built", (_, options, message) => {
    const build = () => createGoogleIdTokenVerifier({ audiences: [audience], ...options });
    expect(build).toThrow(ConfigError);
    expect(build).toThrow(message);
  });

  it.each([
    [{ audiences: [] }, "auth.google.audiences"],
    [{ audiences: [audience], emails: [] }, "auth.google.emails"],
    [{ audiences: [audience], emails: ["ada"] }, "auth.google.emails[0]: Invalid email address"],
    [{ audiences: [audience], domains: [] }, "auth.google.domains"],
    [{ audiences: [audience], domains: ["ada@corp.example"] }, "auth.google.domains[0]: a domain, without @"],
  ])("are refused in the configuration file too: %j", (google, field) => {
    expect(() => parseConfig({ auth: { google } })).toThrow(field);
  });
});
