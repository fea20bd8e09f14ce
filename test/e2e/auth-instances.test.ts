import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newApiKey } from "../../src/auth/api-keys.js";
import { openStore } from "../../src/store/open.js";
import type { Store } from "../../src/store/store.js";
import { REDIS_TEST_URL } from "../limits/support/redis.js";
import { createProtocolClient } from "../support/clients.js";
import { completion, json, startFakeProvider, type FakeProvider } from "../support/fake-provider.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";
import { postgresUrl } from "../store/postgres-support.js";

// Two instances sharing PostgreSQL (keys) and Redis (rate limits), as SPEC section 11 runs
// them. These need both servers, which this machine runs and .ci/run checks: no skip.
const CACHE_TTL_MS = 1000;
const schema = `passthrough_instances_${randomBytes(4).toString("hex")}`;
let provider: FakeProvider;
let store: Store;
let a: TestGateway;
let b: TestGateway;

beforeAll(async () => {
  provider = await startFakeProvider();
  provider.setDefault(json(200, completion("m")));
  store = await openStore(postgresUrl, { schema });
  const config = {
    providers: [{ name: "local", baseUrl: provider.url }],
    database: { url: postgresUrl, schema },
    auth: { cacheTtlMs: CACHE_TTL_MS },
    limits: { redisUrl: REDIS_TEST_URL },
  };
  a = await startTestGateway(config, {}, undefined, { authenticate: true });
  b = await startTestGateway(config, {}, undefined, { authenticate: true });
});
afterAll(async () => {
  await a?.close();
  await b?.close();
  await store?.close();
  await provider?.close();
  const client = new pg.Client(postgresUrl);
  await client.connect();
  await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await client.end();
});

async function addKey(fields: { requestsPerMinute?: number } = {}) {
  const material = newApiKey();
  await store.createKey({ id: material.id, digest: material.digest, name: "instances", ...fields });
  return { id: material.id, key: material.key.reveal() };
}

const status = async (gateway: TestGateway, key: string) => {
  const response = await fetch(`${gateway.url}/api/v1/prompts/passthrough/local/`, { method: "POST", headers: { authorization: `Bearer ${key}` }, body: "{}" });
  await response.arrayBuffer();
  return { status: response.status, retryAfter: response.headers.get("retry-after") };
};

/** How long after `from` the key is refused by this instance. */
async function refusedAfter(gateway: TestGateway, key: string, from: number): Promise<number> {
  while (Date.now() - from < 5 * CACHE_TTL_MS) {
    if ((await status(gateway, key)).status === 401) return Date.now() - from;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return Infinity;
}

describe("two instances sharing PostgreSQL", () => {
  it("both refuse a revoked key within auth.cacheTtlMs of the revocation", async () => {
    const { id, key } = await addKey();
    expect((await status(a, key)).status).toBe(200);
    expect((await status(b, key)).status).toBe(200);
    const revokedAt = Date.now();
    await store.revokeKey(id);
    const [onA, onB] = await Promise.all([refusedAfter(a, key, revokedAt), refusedAfter(b, key, revokedAt)]);
    expect(onA).toBeLessThan(CACHE_TTL_MS);
    expect(onB).toBeLessThan(CACHE_TTL_MS);
  });

  it("take a rotated key's new secret, and its old one until the grace ends, then no longer", async () => {
    const { id, key: old } = await addKey();
    expect((await status(a, old)).status).toBe(200);
    const rotated = newApiKey(id);
    const graceMs = 2 * CACHE_TTL_MS;
    const rotatedAt = Date.now();
    await store.rotateKey(id, { digest: rotated.digest, previousValidUntil: new Date(rotatedAt + graceMs) });
    const fresh = rotated.key.reveal();
    // Within the TTL, the new secret works everywhere; the old one still does during the grace.
    await new Promise((resolve) => setTimeout(resolve, CACHE_TTL_MS));
    for (const gateway of [a, b]) {
      expect((await status(gateway, fresh)).status).toBe(200);
      expect((await status(gateway, old)).status).toBe(200);
    }
    const [onA, onB] = await Promise.all([refusedAfter(a, old, rotatedAt), refusedAfter(b, old, rotatedAt)]);
    for (const after of [onA, onB]) {
      expect(after).toBeGreaterThanOrEqual(graceMs);
      expect(after).toBeLessThan(graceMs + CACHE_TTL_MS);
    }
    expect((await status(a, fresh)).status).toBe(200);
  });
});

describe("two instances sharing Redis", () => {
  it("enforce one rate limit together, with Retry-After", async () => {
    const { key } = await addKey({ requestsPerMinute: 3 });
    const results = [];
    for (const gateway of [a, b, a, b]) results.push(await status(gateway, key));
    expect(results.map((r) => r.status)).toEqual([200, 200, 200, 429]);
    expect(Number(results[3].retryAfter)).toBeGreaterThan(0);
  });

  it("go on serving, from memory, when Redis cannot be reached", async () => {
    const unreachable = await startTestGateway(
      { providers: [{ name: "local", baseUrl: provider.url }], database: { url: postgresUrl, schema }, limits: { redisUrl: "redis://127.0.0.1:1", requestsPerMinute: 100 } },
      {},
      undefined,
      { authenticate: true },
    );
    try {
      const { key } = await addKey();
      const client = createProtocolClient("connect", unreachable.url, { authorization: `Bearer ${key}` });
      for (let i = 0; i < 3; i++) expect((await client.unary("local", { model: "m" })).ok).toBe(true);
      const metrics = await (await fetch(`${unreachable.url}/metrics`)).text();
      expect(Number(/^passthrough_rate_limit_fallback_calls (\d+)/m.exec(metrics)?.[1])).toBeGreaterThanOrEqual(3);
    } finally {
      await unreachable.close();
    }
  });
});
