import type { ApiKey } from "../store/store.js";
import { inGrace, keyDigests, matchDigest, parseApiKey, secretDigest, type KeyDigests } from "./api-keys.js";
import type { KeyCache } from "./key-cache.js";
import { refuse, type AuthPrincipal, type CredentialVerifier, type Verification } from "./verifier.js";

/** Most presented keys remembered as verified; past it the memory starts afresh. */
const MAX_VERIFIED_TEXTS = 10_000;

/**
 * API keys issued by `passthrough keys create`, looked up by id through the key cache. The
 * secret is checked first, so that only the holder of a key learns that it was revoked or
 * expired; a wrong secret is "unknown", as an id that does not exist.
 */
export function createApiKeyVerifier({ cache }: { cache: KeyCache }): CredentialVerifier {
  // What each cached key decides with, built once per key object (a refreshed key is a new
  // object): its digests as bytes, and the one principal every call with it shares.
  const prepared = new WeakMap<ApiKey, { digests: KeyDigests; verified: Verification }>();
  // Each presented key that matched a digest, by its exact text, with the key object and the
  // secret it matched: while the cache hands out that same object, the same text matches the
  // same way, so a call with it skips the parse, the SHA-256 and the comparison. Only texts
  // that matched are kept, so an unknown or wrong secret is always hashed and compared.
  const matched = new Map<string, { key: ApiKey; match: "current" | "previous" }>();
  const prepare = (key: ApiKey) => {
    let found = prepared.get(key);
    if (found === undefined) {
      const principal: AuthPrincipal = {
        kind: "key",
        id: key.id,
        name: key.name,
        allowedProviders: key.allowedProviders,
        admin: key.admin,
        limits: { requestsPerMinute: key.requestsPerMinute ?? undefined, tokensPerMinute: key.tokensPerMinute ?? undefined },
      };
      found = { digests: keyDigests(key), verified: { principal } };
      prepared.set(key, found);
    }
    return found;
  };
  return {
    kind: "api-key",
    accepts: (credential) => credential.format === "api-key",
    verify({ value }) {
      const known = matched.get(value);
      if (known !== undefined && cache.get(known.key.id) === known.key) return admit(known.key, known.match, new Date());
      const parsed = parseApiKey(value);
      if (!parsed.ok) return refuse("malformed", "an API key has the form ptk_<id>_<secret>");
      const digest = secretDigest(parsed.secret);
      const key = cache.get(parsed.id);
      // A cached key is decided synchronously: no promise on the call path.
      return key instanceof Promise ? key.then((found) => decide(value, found, digest)) : decide(value, key, digest);
    },
  };

  function decide(value: string, key: ApiKey | undefined, digest: Buffer): Verification {
    const now = new Date();
    const match = key === undefined ? undefined : matchDigest(prepare(key).digests, digest, now);
    if (key === undefined || match === undefined) return refuse("unknown", "no such API key");
    if (matched.size >= MAX_VERIFIED_TEXTS) matched.clear();
    matched.set(value, { key, match });
    return admit(key, match, now);
  }

  /** A key whose secret matched: refused when revoked, expired, or matched by a rotated-out secret whose grace has ended. */
  function admit(key: ApiKey, match: "current" | "previous", now: Date): Verification {
    // matchDigest checked the grace for a fresh match; a remembered one may have outlived it.
    if (match === "previous" && !inGrace(key, now)) return refuse("unknown", "no such API key");
    if (key.revokedAt !== null && key.revokedAt <= now) return refuse("revoked", "this API key was revoked");
    if (key.expiresAt !== null && key.expiresAt <= now) return refuse("expired", "this API key has expired");
    cache.used(key.id, now);
    return prepare(key).verified;
  }
}
