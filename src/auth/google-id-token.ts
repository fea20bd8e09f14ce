import { readFileSync } from "node:fs";
import { createPublicKey, X509Certificate, type JsonWebKey } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { OAuth2Client, type Certificates, type TokenPayload } from "google-auth-library";
import { ConfigError } from "../config/load.js";
import { refuse, type CredentialVerifier, type RefusalReason, type Verification } from "./verifier.js";

/**
 * The Google ID token verifier: google-auth-library checks the signature, expiry (with its
 * clock skew), issuer and audience; this file adds the allowed emails and hosted domains, feeds
 * it the keys of `auth.google.certsFile` for offline use, and maps its failures to refusals.
 */

/** The issuers of Google's ID tokens, as google-auth-library lists them. */
export const GOOGLE_ISSUERS: readonly string[] = ["accounts.google.com", "https://accounts.google.com"];

export interface GoogleIdTokenVerifierOptions {
  /** The audiences (OAuth client ids, or the URL a service account's token was minted for) a token may name; at least one. */
  readonly audiences: readonly string[];
  /** Verifying keys read once from this file (JWKS, a `{kid: PEM}` map, or PEM blocks); absent: Google's, fetched and cached by google-auth-library. */
  readonly certsFile?: string;
  /** Accounts admitted by their verified email (case-insensitive). With `domains`: either admits; neither: every account. */
  readonly emails?: readonly string[];
  /** Google Workspace domains admitted by the token's `hd` claim. */
  readonly domains?: readonly string[];
  /** Fetches Google's certificates when there is no `certsFile`. Default: a new OAuth2Client. */
  readonly client?: OAuth2Client;
}

/** The keys to try for a token's `kid`: one `{kid: PEM}` map, or one single-key map per kid-less PEM block. */
type KeysFor = (kid: string) => Certificates[] | Promise<Certificates[]>;

/** Builds the verifier; a bad option or an unreadable certs file throws ConfigError now, not at the first call. */
export function createGoogleIdTokenVerifier(options: GoogleIdTokenVerifierOptions): CredentialVerifier {
  if (!options.audiences?.length) throw new ConfigError("invalid configuration: auth.google.audiences: at least one audience is required");
  const audiences = optionList("audiences", options.audiences, (audience) => audience !== "", "an empty audience")!;
  const emails = new Set(optionList("emails", options.emails, (email) => /^[^@\s]+@[^@\s]+$/.test(email), "not an email address"));
  const domains = new Set(optionList("domains", options.domains, (domain) => /^[^@\s]+$/.test(domain), "not a domain"));
  const client = options.client ?? new OAuth2Client();
  const keysFor: KeysFor = options.certsFile === undefined ? () => fetchGoogleCerts(client) : readCertsFile(options.certsFile);
  const issuers = [...GOOGLE_ISSUERS];

  function admit(payload: TokenPayload | undefined): Verification {
    if (typeof payload?.sub !== "string" || payload.sub === "") return refuse("malformed", "the token has no subject (sub)");
    const claimed = typeof payload.email === "string" ? payload.email.toLowerCase() : undefined;
    const email = payload.email_verified === true ? claimed : undefined;
    if (emails.size > 0 || domains.size > 0) {
      const hostedDomain = typeof payload.hd === "string" ? payload.hd.toLowerCase() : undefined;
      const admitted = (email !== undefined && emails.has(email)) || (hostedDomain !== undefined && domains.has(hostedDomain));
      if (!admitted) {
        const unverified = email === undefined && claimed !== undefined && emails.has(claimed);
        return refuse("unknown", unverified ? "the token's email is not verified" : "the token's account is not among the allowed emails and domains");
      }
    }
    return {
      principal: { kind: "google", id: payload.sub, ...(email !== undefined && { email }), allowedProviders: null, admin: false, limits: undefined },
    };
  }

  return {
    kind: "google-id-token",
    accepts: (credential) => credential.format === "id-token",
    async verify(credential) {
      const token = credential.value;
      const kid = readKid(token);
      if (typeof kid !== "string") return kid;
      let failure: LibraryFailure = { reason: "unknown", detail: "no verifying key", nextKey: false };
      for (const certs of await keysFor(kid)) {
        try {
          return admit((await client.verifySignedJwtWithCertsAsync(token, certs, [...audiences], issuers)).getPayload());
        } catch (error) {
          failure = classifyFailure(error);
          if (!failure.nextKey) break;
        }
      }
      return refuse(failure.reason, failure.detail);
    },
  };
}

/** A validated, lower-cased option list; undefined when absent. An empty list is refused: it would read as "anyone". */
function optionList(name: string, values: readonly string[] | undefined, valid: (value: string) => boolean, problem: string): string[] | undefined {
  if (values === undefined) return undefined;
  const field = `invalid configuration: auth.google.${name}`;
  if (values.length === 0) throw new ConfigError(`${field}: an empty list; leave the key out instead`);
  values.forEach((value, index) => {
    if (typeof value !== "string" || !valid(value)) throw new ConfigError(`${field}[${index}]: ${problem}`);
  });
  return name === "audiences" ? [...values] : values.map((value) => value.toLowerCase());
}

/** The `kid` of a token's header, or why the token is malformed; nothing of the token is echoed. */
function readKid(token: string): string | Verification {
  const [header, payload] = token.split(".", 2).map(decodeSegment);
  if (header === undefined || payload === undefined) return refuse("malformed", "the token's header or payload is not base64url-encoded JSON");
  if (header.alg !== "RS256" && header.alg !== "ES256") return refuse("malformed", "the token is not signed with RS256 or ES256");
  if (typeof header.kid !== "string" || header.kid === "") return refuse("malformed", "the token's header names no key (kid)");
  return header.kid;
}

function decodeSegment(segment: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, "base64url").toString("utf8"));
    return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

interface LibraryFailure {
  readonly reason: RefusalReason;
  readonly detail: string;
  /** The signature did not verify with this key: another one may be tried. */
  readonly nextKey: boolean;
}

/**
 * google-auth-library's failures, told apart by their messages: this table is the one place
 * that relies on them (test/auth/google-id-token.test.ts pins each row). Its messages quote the
 * token, so they are never passed on, nor kept as a cause.
 */
const badSignature = /^Invalid token signature/;
const libraryFailures: ReadonlyArray<readonly [RegExp, RefusalReason, string]> = [
  [badSignature, "unknown", "the token's signature does not verify"],
  [/^No pem found for envelope/, "unknown", "the token is signed with a key (kid) that is not among Google's certificates"],
  [/^Token used too late/, "expired", "the Google ID token has expired"],
  [/^Token used too early/, "unknown", "the token is not valid yet (its iat is in the future)"],
  [/^Expiration time too far in future/, "unknown", "the token's expiry is more than a day after now"],
  [/^(No issue time|No expiration time|iat field|exp field)/, "malformed", "the token lacks a valid iat or exp claim"],
  [/^Invalid issuer/, "unknown", "the token was not issued by Google"],
  [/^Wrong recipient/, "unknown", "the token was issued for another audience"],
  [/^(Wrong number of segments|Can't parse token)/, "malformed", "the token is not a JWT"],
];

function classifyFailure(error: unknown): LibraryFailure {
  const message = error instanceof Error ? error.message : "";
  const row = libraryFailures.find(([pattern]) => pattern.test(message));
  if (row === undefined) return { reason: "unknown", detail: "the Google ID token was not accepted", nextKey: false };
  return { reason: row[1], detail: row[2], nextKey: row[0] === badSignature };
}

async function fetchGoogleCerts(client: OAuth2Client): Promise<Certificates[]> {
  try {
    return [(await client.getFederatedSignonCertsAsync()).certs];
  } catch (error) {
    throw new ConnectError("cannot verify Google ID tokens now: Google's certificates could not be fetched", Code.Unavailable, undefined, undefined, error);
  }
}

/** Reads and checks `certsFile` once, when the verifier is built. */
function readCertsFile(file: string): KeysFor {
  const field = "invalid configuration: auth.google.certsFile";
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new ConfigError(`${field}: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? "error"}`);
  }
  try {
    return parseGoogleCerts(text);
  } catch (error) {
    throw new ConfigError(`${field}: ${file}: ${(error as Error).message}`);
  }
}

/**
 * A certs file's keys: Google's v3 JWKS (`{"keys": [{kid, kty, n, e, …}]}`), its v1 map
 * (`{"<kid>": "<PEM certificate>"}`), or PEM blocks without kids, each tried in turn.
 */
export function parseGoogleCerts(text: string): KeysFor {
  const trimmed = text.trim();
  if (!trimmed.startsWith("{")) {
    const keys = pemBlocks(trimmed);
    if (keys.length === 0) throw new Error("holds neither JSON (a JWKS or a {kid: PEM} map) nor PEM certificates or public keys");
    return (kid) => keys.map((pem) => ({ [kid]: pem }));
  }
  let json: unknown;
  try {
    json = JSON.parse(trimmed);
  } catch {
    throw new Error("is not valid JSON");
  }
  const entries = Array.isArray((json as { keys?: unknown }).keys) ? jwksEntries((json as { keys: unknown[] }).keys) : pemMapEntries(json as object);
  if (entries.length === 0) throw new Error("holds no keys");
  const kids = new Set(entries.map(([kid]) => kid));
  if (kids.size !== entries.length) throw new Error("names a kid twice");
  const certs: Certificates = Object.fromEntries(entries);
  return () => [certs];
}

function jwksEntries(keys: unknown[]): Array<[string, string]> {
  return keys.map((key, index) => {
    const jwk = key as JsonWebKey & { kid?: unknown; use?: unknown };
    if (typeof jwk !== "object" || jwk === null || typeof jwk.kid !== "string" || jwk.kid === "") throw new Error(`keys[${index}] has no kid`);
    if (jwk.use !== undefined && jwk.use !== "sig") throw new Error(`keys[${index}] is not a signing key (use)`);
    if (jwk.kty !== "RSA" && jwk.kty !== "EC") throw new Error(`keys[${index}] is neither an RSA nor an EC key (kty)`);
    if (jwk.d !== undefined) throw new Error(`keys[${index}] is a private key; give only public keys`);
    try {
      return [jwk.kid, createPublicKey({ key: jwk, format: "jwk" }).export({ type: "spki", format: "pem" }) as string];
    } catch {
      throw new Error(`keys[${index}] is not a valid public key`);
    }
  });
}

function pemMapEntries(map: object): Array<[string, string]> {
  return Object.entries(map).map(([kid, pem]): [string, string] => {
    const blocks = typeof pem === "string" ? pemBlocks(pem) : [];
    if (kid === "" || blocks.length !== 1) throw new Error(`the entry of kid "${kid}" is not one PEM certificate or public key`);
    return [kid, blocks[0]];
  });
}

/** Every PEM block of the text as a public key in SPKI PEM; a private key is refused rather than turned into its public half. */
function pemBlocks(text: string): string[] {
  return [...text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g)].map(([block, label]) => {
    if (label.includes("PRIVATE")) throw new Error("holds a private key; give only certificates or public keys");
    try {
      if (label === "CERTIFICATE") return new X509Certificate(block).publicKey.export({ type: "spki", format: "pem" }) as string;
      if (label === "PUBLIC KEY" || label === "RSA PUBLIC KEY") return createPublicKey(block).export({ type: "spki", format: "pem" }) as string;
    } catch {
      throw new Error(`holds a ${label} block that cannot be read`);
    }
    throw new Error(`holds a PEM block of an unsupported kind (${label})`);
  });
}
