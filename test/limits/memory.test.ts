import { describe, expect, it } from "vitest";
import { createMemoryRateLimiter } from "../../src/limits/memory.js";
import { runRateLimiterContract } from "./rate-limiter-contract.js";

runRateLimiterContract({ name: "memory", newLimiter: ({ now }) => createMemoryRateLimiter({ now }) });

describe("the in-memory limiter", () => {
  it("drops the state of keys that have been idle for a window, without a timer", async () => {
    let time = 0;
    const limiter = createMemoryRateLimiter({ now: () => time });
    for (let i = 0; i < 100; i++) await limiter.admit(`idle-${i}`, { requestsPerMinute: 10 });
    await limiter.charge("idle-0", 5, { tokensPerMinute: 10 });
    expect(limiter.trackedKeys()).toBe(100);
    // One request of 10 a minute is spent after 6 s; the 5 tokens of 10 a minute after 30 s.
    time += 60_000;
    await limiter.admit("fresh", { requestsPerMinute: 10 });
    expect(limiter.trackedKeys()).toBe(1);
  });

  it("keeps the state of a key still inside its window when idle keys are swept", async () => {
    let time = 0;
    const limiter = createMemoryRateLimiter({ now: () => time });
    await limiter.charge("heavy", 50, { tokensPerMinute: 10 }); // five minutes of budget
    time += 60_000;
    await limiter.admit("fresh", { requestsPerMinute: 10 });
    expect(limiter.trackedKeys()).toBe(2);
    expect((await limiter.admit("heavy", { tokensPerMinute: 10 })).allowed).toBe(false);
  });

  it("tracks at most maxKeys keys, forgetting the oldest when all are active", async () => {
    const limiter = createMemoryRateLimiter({ now: () => 0, maxKeys: 3 });
    for (const key of ["a", "b", "c", "d"]) await limiter.admit(key, { requestsPerMinute: 1 });
    expect(limiter.trackedKeys()).toBe(3);
    expect((await limiter.admit("a", { requestsPerMinute: 1 })).allowed).toBe(true); // forgotten, so admitted again
    expect((await limiter.admit("d", { requestsPerMinute: 1 })).allowed).toBe(false);
  });

  it("tracks no state for a key without limits", async () => {
    const limiter = createMemoryRateLimiter();
    for (let i = 0; i < 50; i++) await limiter.admit(`free-${i}`, {});
    expect(limiter.trackedKeys()).toBe(0);
  });

  it("answers an admitted request with one shared, already-resolved promise", () => {
    const limiter = createMemoryRateLimiter();
    expect(limiter.admit("k", { requestsPerMinute: 100 })).toBe(limiter.admit("k", { requestsPerMinute: 100 }));
  });

  it.each([
    ["maxKeys 0", { maxKeys: 0 }, "maxKeys"],
    ["maxKeys 1.5", { maxKeys: 1.5 }, "maxKeys"],
    ["a clock that is not a function", { now: 5 as unknown as () => number }, "now"],
  ])("refuses %s when built", (_name, options, field) => {
    expect(() => createMemoryRateLimiter(options)).toThrow(field);
  });
});
