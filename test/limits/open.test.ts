import { describe, expect, it } from "vitest";
import { createRateLimiter, type RateLimiterOptions } from "../../src/limits/open.js";
import { effectiveLimits } from "../../src/limits/rate-limiter.js";
import type { RedisRateLimiter } from "../../src/limits/redis.js";

describe("createRateLimiter", () => {
  it("counts in memory without a Redis URL", async () => {
    const limiter = createRateLimiter();
    expect("backend" in limiter).toBe(false);
    expect("trackedKeys" in limiter).toBe(true);
    await limiter.close();
  });

  it("counts in Redis, with the memory fallback, given a Redis URL", async () => {
    const limiter = createRateLimiter({ redisUrl: "redis://127.0.0.1:1" }) as RedisRateLimiter;
    expect(limiter.backend()).toBe("memory"); // not connected (yet, or ever: nothing listens there)
    expect((await limiter.admit("k", { requestsPerMinute: 1 })).allowed).toBe(true);
    await limiter.close();
  });

  it.each<[string, RateLimiterOptions, string]>([
    ["a URL that is not Redis's", { redisUrl: "http://127.0.0.1:6379" }, "url"],
    ["an empty URL", { redisUrl: "" }, "url"],
    ["a prefix with a space", { keyPrefix: "rate limits:" }, "keyPrefix"],
    ["an empty prefix", { keyPrefix: "" }, "keyPrefix"],
    ["a zero timeout", { timeoutMs: 0 }, "timeoutMs"],
    ["a fractional probe interval", { probeIntervalMs: 2.5 }, "probeIntervalMs"],
    ["a negative key cap", { maxKeys: -1 }, "maxKeys"],
    ["a logger without info", { logger: { warn: () => {} } as never }, "logger"],
  ])("refuses %s when built, naming the option, with or without Redis", (_name, options, field) => {
    expect(() => createRateLimiter(options)).toThrow(field);
    if (options.redisUrl === undefined) expect(() => createRateLimiter({ ...options, redisUrl: "redis://127.0.0.1:1" })).toThrow(field);
  });
});

describe("effectiveLimits", () => {
  it.each([
    ["the defaults without own limits", undefined, { requestsPerMinute: 600, tokensPerMinute: 200_000 }],
    ["own limits over the defaults", { requestsPerMinute: 10 }, { requestsPerMinute: 10, tokensPerMinute: 200_000 }],
    ["a default where the own limit is undefined", { requestsPerMinute: undefined, tokensPerMinute: 5 }, { requestsPerMinute: 600, tokensPerMinute: 5 }],
  ])("takes %s", (_name, own, expected) => {
    expect(effectiveLimits(own, { requestsPerMinute: 600, tokensPerMinute: 200_000 })).toEqual(expected);
  });

  it("leaves a limit absent when neither has it", () => {
    expect(effectiveLimits({}, {})).toEqual({ requestsPerMinute: undefined, tokensPerMinute: undefined });
  });
});
