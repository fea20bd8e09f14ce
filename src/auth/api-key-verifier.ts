import type { ApiKey } from "../store/store.js";
import { keyDigests, matchDigest, parseApiKey, secretDigest, type KeyDigests } from "./api-keys.js";
import type { KeyCache } from "./key-cache.js";
import { refuse, type AuthPrincipal, type CredentialVerifier, type Verification } from "./verifier.js";

/**
 * API keys issued by `passthrough keys create`, looked up by id through the key cache. The
 * secret is checked first, so that only the holder of a key learns that it was revoked or
 * expired; a wrong secret is "unknown", as an id that does not exist.
 */
export function createApiKeyVerifier({ cache }: { cache: KeyCache }): CredentialVerifier {
  // What each cached key decides with, built once per key object (a refreshed key is a new
  // object): its digests as bytes, and the one principal every call with it shares.
  const prepared = new WeakMap<ApiKey, { digests: KeyDigests; verified: Verification }>();
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
    verify(credential) {
      const parsed = parseApiKey(credential.value);
      if (!parsed.ok) return refuse("malformed", "an API key has the form ptk_<id>_<secret>");
      const digest = secretDigest(parsed.secret);
      const key = cache.get(parsed.id);
      // A cached key is decided synchronously: no promise on the call path.
      return key instanceof Promise ? key.then((found) => decide(found, digest)) : decide(key, digest);
    },
  };

  function decide(key: ApiKey | undefined, digest: Buffer): Verification {
    const now = new Date();
    if (key === undefined) return refuse("unknown", "no such API key");
    const known = prepare(key);
    if (matchDigest(known.digests, digest, now) === undefined) return refuse("unknown", "no such API key");
    if (key.revokedAt !== null && key.revokedAt <= now) return refuse("revoked", "this API key was revoked");
    if (key.expiresAt !== null && key.expiresAt <= now) return refuse("expired", "this API key has expired");
    cache.used(key.id, now);
    return known.verified;
  }
}
