import { API_KEY_PREFIX } from "./api-keys.js";
import type { Credential, CredentialFormat, Refusal } from "./verifier.js";

/**
 * Reads the one credential of a call from its `authorization` header (gRPC metadata arrives as
 * the same header) and decides from its shape which verifier it is for. A refusal's detail
 * never repeats any part of the header: a caller who mistyped the scheme may have sent a secret.
 */

/** Every API key starts with this, so that secret scanners can recognise a leaked one. */
const KEY_START = `${API_KEY_PREFIX}_`;

/** Longest `authorization` value read; a longer one is refused before it is looked at. */
export const MAX_AUTHORIZATION_LENGTH = 8 * 1024;

/** The header's credential, or why there is none: `missing` or `malformed`, as a Refusal. */
export type ParsedAuthorization =
  | { readonly credential: Credential; readonly refusal?: undefined }
  | { readonly credential?: undefined; readonly refusal: Refusal & { readonly reason: "missing" | "malformed" } };

const schemes: Record<string, Credential["scheme"]> = { token: "token", bearer: "bearer" };

/** A JWT in compact serialization: three non-empty base64url parts (an unsigned `alg: none` token has an empty third). */
const jwtShape = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** Most headers remembered as parsed to an API key, and the longest; past the count the memory starts afresh. */
const MAX_PARSED_KEYS = 10_000;
const MAX_PARSED_KEY_LENGTH = 256;

/**
 * Headers that parsed to an API key credential, by their exact text: a caller sends the same
 * header call after call, and a hit costs one lookup instead of the trims, tests and slices.
 * Only API keys, whose headers are short; the verifier checks the key itself every time.
 */
const parsedKeys = new Map<string, ParsedAuthorization>();

/**
 * `Token <api key>` or `Bearer <api key or Google ID token>`: the scheme in any case, then
 * one or more spaces (RFC 7235's 1*SP), then exactly one credential of printable ASCII.
 */
export function parseAuthorization(header: string | null | undefined): ParsedAuthorization {
  if (header === null || header === undefined) return missing("no authorization header");
  const known = parsedKeys.get(header);
  if (known !== undefined) return known;
  const parsed = parse(header);
  if (parsed.credential?.format === "api-key" && header.length <= MAX_PARSED_KEY_LENGTH) {
    if (parsedKeys.size >= MAX_PARSED_KEYS) parsedKeys.clear();
    parsedKeys.set(header, parsed);
  }
  return parsed;
}

function parse(header: string): ParsedAuthorization {
  if (header.length > MAX_AUTHORIZATION_LENGTH) {
    return malformed(`the authorization header is longer than ${MAX_AUTHORIZATION_LENGTH} characters`);
  }
  const value = header.replace(/^[ \t]+|[ \t]+$/g, "");
  if (value === "") return missing("the authorization header is empty");
  if (/[^\x20-\x7e]/.test(value)) return malformed("the authorization header holds characters other than printable ASCII");
  const space = value.indexOf(" ");
  if (space === -1) {
    if (schemes[value.toLowerCase()] !== undefined) return malformed("the authorization scheme is not followed by a credential");
    return malformed("the authorization header has no scheme: write `Bearer <credential>` or `Token <api key>`");
  }
  const scheme = schemes[value.slice(0, space).toLowerCase()];
  if (scheme === undefined) return malformed("the authorization scheme is not supported: use Bearer or Token");
  const token = value.slice(space).replace(/^ +/, "");
  if (token.includes(" ")) return malformed("the authorization header holds more than one credential");
  const format = credentialFormat(token);
  if (format === undefined) {
    return malformed(`the credential is neither an API key (${KEY_START}…) nor a Google ID token (a JWT)`);
  }
  if (scheme === "token" && format !== "api-key") {
    return malformed(`the Token scheme carries an API key (${KEY_START}…); send a Google ID token as Bearer`);
  }
  return { credential: { scheme, format, value: token } };
}

/** Which verifier a credential is for, from its shape alone; undefined: no verifier's. */
export function credentialFormat(value: string): CredentialFormat | undefined {
  if (value.startsWith(KEY_START) && value.length > KEY_START.length) return "api-key";
  if (jwtShape.test(value)) return "id-token";
  return undefined;
}

function missing(detail: string): ParsedAuthorization {
  return { refusal: { reason: "missing", detail } };
}

function malformed(detail: string): ParsedAuthorization {
  return { refusal: { reason: "malformed", detail } };
}
