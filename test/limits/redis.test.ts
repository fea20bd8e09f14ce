import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import { createRedisRateLimiter, type RedisRateLimiter } from "../../src/limits/redis.js";
import { runRateLimiterContract } from "./rate-limiter-contract.js";
import { REDIS_TEST_URL, assertRedis, deleteKeys, inspector, redisReachable, testKeyPrefix } from "./support/redis.js";

const reachable = await redisReachable();
const keyPrefix = testKeyPrefix();

/** A limiter on the test Redis that has connected, so that no call falls back while it starts. */
async function connectedLimiter(now?: () => number): Promise<RedisRateLimiter> {
  const limiter = createRedisRateLimiter({ url: REDIS_TEST_URL, keyPrefix, now });
  if (!(await limiter.connected())) throw new Error(`the limiter could not reach Redis at ${REDIS_TEST_URL}`);
  return limiter;
}

describe("the Redis limiter", () => {
  let client: Redis;
  beforeAll(async () => {
    assertRedis(reachable);
    client = inspector();
    await client.connect();
  });
  afterAll(async () => {
    if (!client) return; // Redis was unreachable: the suite has failed already
    await deleteKeys(client, keyPrefix);
    client.disconnect();
  });

  runRateLimiterContract({ name: "Redis", newLimiter: ({ now }) => connectedLimiter(now) });

  it("enforces one limit across two instances sharing the Redis, on Redis's own clock", async () => {
    const [first, second] = [await connectedLimiter(), await connectedLimiter()];
    try {
      const limits = { requestsPerMinute: 10 };
      const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? first : second).admit("shared", limits)));
      expect(answers.every((answer) => answer.allowed)).toBe(true);
      // The 11th, whichever instance gets it, is refused.
      expect(await first.admit("shared", limits)).toMatchObject({ allowed: false, limit: "requestsPerMinute" });
      expect(await second.admit("shared", limits)).toMatchObject({ allowed: false, limit: "requestsPerMinute" });
      const burst = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? first : second).admit("shared-burst", limits)));
      expect(burst.filter((answer) => answer.allowed)).toHaveLength(10);
      expect(first.fallbacks() + second.fallbacks()).toBe(0);
    } finally {
      await Promise.all([first.close(), second.close()]);
    }
  });

  it("refuses on one instance the request after tokens charged on another", async () => {
    const [first, second] = [await connectedLimiter(), await connectedLimiter()];
    try {
      const limits = { tokensPerMinute: 1000 };
      await first.charge("tokens-shared", 2000, limits);
      const refused = await second.admit("tokens-shared", limits);
      expect(refused).toMatchObject({ allowed: false, limit: "tokensPerMinute" });
      // Whatever time passed between the two calls, about a minute of debt is left.
      expect(refused.allowed === false && refused.retryAfterMs).toBeGreaterThan(59_000);
    } finally {
      await Promise.all([first.close(), second.close()]);
    }
  });

  it("keeps one hash per key, named by the prefix and the key id, expiring when its budget is full again", async () => {
    const limiter = await connectedLimiter();
    try {
      await limiter.admit("named", { requestsPerMinute: 60 });
      await limiter.charge("named", 30, { tokensPerMinute: 60 });
      expect(await client.keys(`${keyPrefix}*`)).toContain(`${keyPrefix}named`);
      expect(Object.keys(await client.hgetall(`${keyPrefix}named`)).sort()).toEqual(["r", "t"]);
      // One request of 60 a minute is repaid in 1 s; 30 tokens of 60 a minute in 30 s.
      const ttl = await client.pttl(`${keyPrefix}named`);
      expect(ttl).toBeGreaterThan(28_000);
      expect(ttl).toBeLessThanOrEqual(30_000);
      await limiter.admit("short", { requestsPerMinute: 600 });
      expect(await client.pttl(`${keyPrefix}short`)).toBeLessThanOrEqual(100);
      await new Promise((resolve) => setTimeout(resolve, 150));
      expect(await client.exists(`${keyPrefix}short`)).toBe(0);
    } finally {
      await limiter.close();
    }
  });

  it("writes nothing for a key without limits", async () => {
    const limiter = await connectedLimiter();
    try {
      await limiter.admit("unlimited", {});
      await limiter.charge("unlimited", 100, {});
      expect(await client.exists(`${keyPrefix}unlimited`)).toBe(0);
    } finally {
      await limiter.close();
    }
  });
});
