import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Redis } from "ioredis";
import type { LimitsLogger } from "../../src/limits/rate-limiter.js";
import { createRedisRateLimiter, type RedisRateLimiter } from "../../src/limits/redis.js";
import { REDIS_TEST_URL, assertRedis, deleteKeys, inspector, redisReachable, testKeyPrefix } from "./support/redis.js";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.js";

const reachable = await redisReachable();
const keyPrefix = testKeyPrefix();
const TIMEOUT_MS = 100;

/** A logger that keeps what it was told. */
function recordingLogger(): LimitsLogger & { warns: string[]; infos: string[] } {
  const warns: string[] = [];
  const infos: string[] = [];
  return { warns, infos, warn: (_fields, message) => warns.push(message), info: (_fields, message) => infos.push(message) };
}

async function eventually(condition: () => boolean, withinMs = 5000): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`not true within ${withinMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function timed<T>(work: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await work();
  return { value, ms: performance.now() - started };
}

describe("the Redis limiter when Redis is unreachable", () => {
  it("answers every check from memory at once, counting the fallbacks and logging the outage once", async () => {
    const logger = recordingLogger();
    const limiter = createRedisRateLimiter({ url: "redis://127.0.0.1:1", keyPrefix, timeoutMs: TIMEOUT_MS, logger });
    try {
      expect(await limiter.connected()).toBe(false);
      const limits = { requestsPerMinute: 5 };
      const { value: answers, ms } = await timed(() => Promise.all(Array.from({ length: 50 }, () => limiter.admit("down", limits))));
      expect(ms).toBeLessThan(TIMEOUT_MS + 400);
      // The in-memory counter still enforces the limit on this instance.
      expect(answers.filter((answer) => answer.allowed)).toHaveLength(5);
      await limiter.charge("down", 10, { tokensPerMinute: 5 });
      expect((await limiter.admit("down", { tokensPerMinute: 5 })).allowed).toBe(false);
      expect(limiter.fallbacks()).toBe(52);
      expect(limiter.backend()).toBe("memory");
      // ioredis keeps retrying in the background; the outage is still one line and one count.
      await new Promise((resolve) => setTimeout(resolve, 500));
      await limiter.admit("down", limits);
      expect(limiter.outages()).toBe(1);
      expect(logger.warns).toEqual(["rate limits: Redis is not answering; counting in this instance's memory until it does"]);
      expect(logger.infos).toEqual([]);
    } finally {
      await limiter.close();
    }
  });
});

describe("the Redis limiter when Redis goes away and comes back", () => {
  let client: Redis;
  let proxy: TcpProxy;
  let limiter: RedisRateLimiter;
  let logger: ReturnType<typeof recordingLogger>;

  beforeAll(async () => {
    assertRedis(reachable);
    client = inspector();
    await client.connect();
    const target = new URL(REDIS_TEST_URL);
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 6379) });
    const viaProxy = new URL(REDIS_TEST_URL);
    viaProxy.host = `127.0.0.1:${proxy.port}`;
    logger = recordingLogger();
    limiter = createRedisRateLimiter({ url: viaProxy.toString(), keyPrefix, timeoutMs: TIMEOUT_MS, probeIntervalMs: 50, logger });
    expect(await limiter.connected()).toBe(true);
  });
  afterAll(async () => {
    await limiter?.close();
    await proxy?.close();
    if (!client) return; // Redis was unreachable: the suite has failed already
    await deleteKeys(client, keyPrefix);
    client.disconnect();
  });

  it("falls back to memory when the connection is cut, and returns to Redis when it can reconnect", async () => {
    const limits = { requestsPerMinute: 3 };
    expect(await limiter.admit("flaky", limits)).toEqual({ allowed: true });
    expect(limiter.fallbacks()).toBe(0);
    expect(await client.exists(`${keyPrefix}flaky`)).toBe(1);

    await proxy.close();
    await eventually(() => limiter.backend() === "memory");
    const { value: during, ms } = await timed(() => limiter.admit("flaky", limits));
    expect(during.allowed).toBe(true);
    expect(ms).toBeLessThan(TIMEOUT_MS + 300);
    expect(limiter.fallbacks()).toBe(1);
    expect(logger.warns).toHaveLength(1);

    await proxy.reopen();
    await eventually(() => limiter.backend() === "redis");
    expect(logger.infos).toEqual(["rate limits: Redis answers again; counting there"]);
    // Back on Redis's counters: one of the three was spent there before the outage.
    const after = [await limiter.admit("flaky", limits), await limiter.admit("flaky", limits), await limiter.admit("flaky", limits)];
    expect(after.map((answer) => answer.allowed)).toEqual([true, true, false]);
    expect(limiter.fallbacks()).toBe(1);
    expect(limiter.outages()).toBe(1);
  });

  it("answers from memory within the timeout when Redis stops answering, and returns when it answers again", async () => {
    const fallbacksBefore = limiter.fallbacks();
    const outagesBefore = limiter.outages();
    proxy.stall();
    const limits = { requestsPerMinute: 100 };
    const first = await timed(() => limiter.admit("stalled", limits));
    expect(first.value.allowed).toBe(true);
    expect(first.ms).toBeGreaterThanOrEqual(TIMEOUT_MS - 5);
    expect(first.ms).toBeLessThan(TIMEOUT_MS + 300);
    // Once the outage is known, calls do not wait on Redis any more.
    const next = await timed(() => Promise.all(Array.from({ length: 20 }, () => limiter.admit("stalled", limits))));
    expect(next.ms).toBeLessThan(TIMEOUT_MS);
    expect(limiter.fallbacks()).toBe(fallbacksBefore + 21);
    expect(limiter.outages()).toBe(outagesBefore + 1);

    proxy.resume();
    await eventually(() => {
      void limiter.admit("stalled", limits); // a call while degraded is what sends the probe
      return limiter.backend() === "redis";
    });
    expect(logger.warns).toHaveLength(2);
    expect(logger.infos).toHaveLength(2);
    const fallbacksAfter = limiter.fallbacks();
    expect((await limiter.admit("stalled", limits)).allowed).toBe(true);
    expect(limiter.fallbacks()).toBe(fallbacksAfter);
  });
});
