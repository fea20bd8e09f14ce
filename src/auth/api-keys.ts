import { hash, randomBytes, timingSafeEqual } from "node:crypto";
import { Secret } from "../config/secret.js";
import type { ApiKey } from "../store/store.js";

/**
 * API key material (SPEC section 5): `ptk_<id>_<secret>`. The fixed `ptk` prefix and the rigid
 * shape let secret scanners (GitHub secret scanning, gitleaks, trufflehog) match a leaked key
 * with one regex, API_KEY_PATTERN, and almost no false positives, and tell a reader what it is.
 * The id is the clear lookup part; only the SHA-256 digest of the secret is ever stored.
 */
export const API_KEY_PREFIX = "ptk";

/** 10 random bytes as 16 lower-case base32 characters: URL-safe, without `_`, so the key splits unambiguously. */
const ID_BYTES = 10;
/** 256 random bits, as 43 base64url characters. */
const SECRET_BYTES = 32;

/**
 * What a passthrough key looks like, for scanners and for the strict parse below. The secret's
 * last character carries 2 bits past the 32 bytes, which canonical base64url leaves at zero.
 */
export const API_KEY_PATTERN = /^ptk_([a-z2-7]{16})_([A-Za-z0-9_-]{42}[AEIMQUYcgkosw048])$/;

/** What a key id looks like (as `keys list` shows it). */
export const API_KEY_ID_PATTERN = /^[a-z2-7]{16}$/;

export interface NewApiKeyMaterial {
  readonly id: string;
  /** SHA-256 of the secret, hex: what the store keeps. */
  readonly digest: string;
  /** The whole key, shown once to whoever created it; prints as `[redacted]`. */
  readonly key: Secret;
}

/** A fresh key: a new id, or the given one when a key is rotated (same id, new secret). */
export function newApiKey(id: string = newKeyId()): NewApiKeyMaterial {
  const secret = randomBytes(SECRET_BYTES).toString("base64url");
  return { id, digest: digestSecret(secret), key: new Secret(`${API_KEY_PREFIX}_${id}_${secret}`) };
}

export function newKeyId(): string {
  return base32(randomBytes(ID_BYTES));
}

/** A parsed key, or why it is not one; the text is never echoed, whatever it held. */
export type ParsedApiKey = { readonly ok: true; readonly id: string; readonly secret: Secret } | { readonly ok: false; readonly reason: "malformed" };

/** Strict: the exact shape, and a secret that is canonical base64url of 32 bytes. Never throws. */
export function parseApiKey(text: string): ParsedApiKey {
  const match = typeof text === "string" && text.length < 128 ? API_KEY_PATTERN.exec(text) : null;
  if (match === null) return { ok: false, reason: "malformed" };
  return { ok: true, id: match[1], secret: new Secret(match[2]) };
}

/** SHA-256 of the secret part, hex, as the store keeps it. A fast hash suffices: the secret has 256 random bits, nothing to guess. */
export function digestSecret(secret: Secret | string): string {
  return secretDigest(secret).toString("hex");
}

/** SHA-256 of the secret part, as bytes: what a presented key is compared by on every call. */
export function secretDigest(secret: Secret | string): Buffer {
  // One-shot, cheaper than createHash.
  return hash("sha256", typeof secret === "string" ? secret : secret.reveal(), "buffer");
}

/** A key's stored digests as bytes, decoded once per key rather than on every call. */
export interface KeyDigests {
  readonly digest: Buffer;
  readonly previousDigest: Buffer | null;
  readonly previousValidUntil: Date | null;
}

export function keyDigests(key: Pick<ApiKey, "digest" | "previousDigest" | "previousValidUntil">): KeyDigests {
  return {
    digest: Buffer.from(key.digest, "hex"),
    previousDigest: key.previousDigest === null ? null : Buffer.from(key.previousDigest, "hex"),
    previousValidUntil: key.previousValidUntil,
  };
}

/** Compares two digests in constant time (their length is not secret); an empty one matches nothing. */
export function digestsEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && a.length > 0 && timingSafeEqual(a, b);
}

/**
 * Which of a key's secrets a digest matches: the current one, or the one before the last
 * rotation while its grace lasts. Undefined: neither. Revocation and expiry are the caller's checks.
 */
export function matchDigest(key: KeyDigests, digest: Buffer, now: Date): "current" | "previous" | undefined {
  const current = digestsEqual(key.digest, digest);
  const previous = key.previousDigest !== null && digestsEqual(key.previousDigest, digest);
  if (current) return "current";
  if (previous && inGrace(key, now)) return "previous";
  return undefined;
}

/** Whether the secret before a key's last rotation is still accepted at `now`. */
export function inGrace(key: Pick<KeyDigests, "previousValidUntil">, now: Date): boolean {
  return key.previousValidUntil !== null && now < key.previousValidUntil;
}

const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

function base32(bytes: Uint8Array): string {
  let out = "";
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}
