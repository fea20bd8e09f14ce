import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApiKeyVerifier } from "../../src/auth/api-key-verifier.js";
import { newApiKey } from "../../src/auth/api-keys.js";
import { createKeyCache, type KeyCache } from "../../src/auth/key-cache.js";
import type { Credential, Verification } from "../../src/auth/verifier.js";
import { openStore } from "../../src/store/open.js";
import type { ApiKey, Store } from "../../src/store/store.js";
import { runVerifierContract } from "./verifier.contract.js";

const dir = mkdtempSync(path.join(tmpdir(), "passthrough-api-key-verifier-"));
const store: Store = await openStore(`sqlite:${path.join(dir, "keys.db")}`);
const caches: KeyCache[] = [];
afterAll(async () => {
  for (const cache of caches) await cache.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

const apiKey = (value: string): Credential => ({ scheme: "bearer", format: "api-key", value });

async function issued(options: { expiresAt?: Date } = {}) {
  const material = newApiKey();
  await store.createKey({ id: material.id, digest: material.digest, name: "contract", expiresAt: options.expiresAt ?? null });
  return material;
}

const valid = await issued();
const expired = await issued({ expiresAt: new Date(Date.now() - 1000) });
const revoked = await issued();
await store.revokeKey(revoked.id);
const unknown = newApiKey();

function newCache(ttlMs = 5000): KeyCache {
  const cache = createKeyCache({ store, ttlMs });
  caches.push(cache);
  return cache;
}

runVerifierContract({
  name: "API keys (SQLite store)",
  newVerifier: () => createApiKeyVerifier({ cache: newCache() }),
  credentials: {
    valid: apiKey(valid.key.reveal()),
    expired: apiKey(expired.key.reveal()),
    unknown: apiKey(unknown.key.reveal()),
    revoked: apiKey(revoked.key.reveal()),
    malformed: apiKey("ptk_notakey"),
    foreign: { scheme: "bearer", format: "id-token", value: "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln" },
  },
  expectedPrincipal: { kind: "key", id: valid.id },
});

describe("API key verifier over the key cache", () => {
  it("reads a key from the store once, then decides synchronously while the cache holds it", async () => {
    const verifier = createApiKeyVerifier({ cache: newCache() });
    const credential = apiKey(valid.key.reveal());
    const first = verifier.verify(credential);
    expect(first).toBeInstanceOf(Promise);
    expect((await first).principal?.id).toBe(valid.id);
    const again = verifier.verify(credential);
    expect(again).not.toBeInstanceOf(Promise);
    expect((again as Awaited<typeof first>).principal?.id).toBe(valid.id);
  });

  it("refuses a key with the right id and a wrong secret as unknown, from the cache too", async () => {
    const verifier = createApiKeyVerifier({ cache: newCache() });
    await verifier.verify(apiKey(valid.key.reveal()));
    const forged = `ptk_${valid.id}_${unknown.key.reveal().slice(`ptk_${unknown.id}_`.length)}`;
    expect((await verifier.verify(apiKey(forged))).refusal?.reason).toBe("unknown");
  });

  it("asks the store again once the entry is older than the TTL, and sees a revocation", async () => {
    const key = await issued();
    const verifier = createApiKeyVerifier({ cache: newCache(50) });
    const credential = apiKey(key.key.reveal());
    expect((await verifier.verify(credential)).principal?.id).toBe(key.id);
    await store.revokeKey(key.id);
    await new Promise((resolve) => setTimeout(resolve, 120));
    expect((await verifier.verify(credential)).refusal?.reason).toBe("revoked");
  });
});

describe("API key verifier: a presented key it has already verified", () => {
  /** A key as the store would hand it out, with `secret` current (and `previous` rotated out until `graceUntil`). */
  const keyOf = (material: ReturnType<typeof newApiKey>, more: Partial<ApiKey> = {}): ApiKey => ({
    id: material.id,
    name: "memo",
    allowedProviders: null,
    requestsPerMinute: null,
    tokensPerMinute: null,
    admin: false,
    createdAt: new Date(),
    expiresAt: null,
    revokedAt: null,
    lastUsedAt: null,
    previousValidUntil: null,
    updatedAt: new Date(),
    version: 1,
    digest: material.digest,
    previousDigest: null,
    ...more,
  });
  /** A cache that hands out whatever `current` is, synchronously, as a cache hit does. */
  const fixedCache = (current: { key: ApiKey | undefined }): KeyCache => ({ get: () => current.key, used: () => {}, close: async () => {} });
  const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  it("refuses a rotated-out secret once its grace ends, although the cache still hands out the same key", async () => {
    const old = newApiKey();
    const fresh = newApiKey(old.id);
    const current = { key: keyOf(fresh, { previousDigest: old.digest, previousValidUntil: new Date(Date.now() + 80) }) };
    const verifier = createApiKeyVerifier({ cache: fixedCache(current) });
    const credential = apiKey(old.key.reveal());
    expect((verifier.verify(credential) as Verification).principal?.id).toBe(old.id);
    expect((verifier.verify(credential) as Verification).principal?.id).toBe(old.id);
    await pause(120);
    expect((verifier.verify(credential) as Verification).refusal?.reason).toBe("unknown");
    expect((verifier.verify(apiKey(fresh.key.reveal())) as Verification).principal?.id).toBe(old.id);
  });

  it("refuses it once the key expires while cached", async () => {
    const material = newApiKey();
    const verifier = createApiKeyVerifier({ cache: fixedCache({ key: keyOf(material, { expiresAt: new Date(Date.now() + 80) }) }) });
    const credential = apiKey(material.key.reveal());
    expect((verifier.verify(credential) as Verification).principal?.id).toBe(material.id);
    await pause(120);
    expect((verifier.verify(credential) as Verification).refusal?.reason).toBe("expired");
  });

  it("checks it afresh against a key the cache refreshed: a rotation without grace, then a revocation", () => {
    const old = newApiKey();
    const fresh = newApiKey(old.id);
    const current: { key: ApiKey | undefined } = { key: keyOf(old) };
    const verifier = createApiKeyVerifier({ cache: fixedCache(current) });
    const credential = apiKey(old.key.reveal());
    expect((verifier.verify(credential) as Verification).principal?.id).toBe(old.id);
    current.key = keyOf(fresh, { previousDigest: old.digest, previousValidUntil: new Date(Date.now() - 1) });
    expect((verifier.verify(credential) as Verification).refusal?.reason).toBe("unknown");
    expect((verifier.verify(apiKey(fresh.key.reveal())) as Verification).principal?.id).toBe(old.id);
    current.key = keyOf(fresh, { revokedAt: new Date() });
    expect((verifier.verify(apiKey(fresh.key.reveal())) as Verification).refusal?.reason).toBe("revoked");
    current.key = undefined;
    expect((verifier.verify(apiKey(fresh.key.reveal())) as Verification).refusal?.reason).toBe("unknown");
  });
});
