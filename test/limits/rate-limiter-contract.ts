import { randomUUID } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { retryAfterSeconds, type Admission, type RateLimiter, type RateLimits } from "../../src/limits/rate-limiter.js";

export interface RateLimiterContractOptions {
  name: string;
  /** A fresh limiter on this clock (milliseconds); the contract closes it after each test. */
  newLimiter(clock: { now: () => number }): RateLimiter | Promise<RateLimiter>;
}

/**
 * What every RateLimiter must do, run against each implementation (memory, Redis). Time is a
 * clock the test moves, so that windows slide without sleeping; each test uses fresh key ids.
 */
export function runRateLimiterContract({ name, newLimiter }: RateLimiterContractOptions): void {
  describe(`the RateLimiter contract: ${name}`, () => {
    let time = 0;
    let limiter: RateLimiter;
    const opened: RateLimiter[] = [];
    const open = async () => {
      const made = await newLimiter({ now: () => time });
      opened.push(made);
      return made;
    };
    const newKey = () => `key-${randomUUID()}`;
    const admitMany = async (keyId: string, limits: RateLimits, count: number): Promise<Admission[]> => {
      const answers: Admission[] = [];
      for (let i = 0; i < count; i++) answers.push(await limiter.admit(keyId, limits));
      return answers;
    };
    const allowedCount = (answers: Admission[]) => answers.filter((answer) => answer.allowed).length;

    beforeEach(async () => {
      time = 1_700_000_000_000 + Math.floor(Math.random() * 1_000_000);
      limiter = await open();
    });
    afterEach(async () => {
      for (const made of opened.splice(0)) {
        // A healthy backend answers every call itself.
        expect(made.fallbacks()).toBe(0);
        await made.close();
      }
    });

    it.each([1, 5, 7, 600])("admits %i requests per minute at once, then refuses the next with the wait until one fits", async (perMinute) => {
      const key = newKey();
      const limits = { requestsPerMinute: perMinute };
      expect(allowedCount(await admitMany(key, limits, perMinute))).toBe(perMinute);
      const refused = await limiter.admit(key, limits);
      const interval = Math.ceil(60_000 / perMinute);
      expect(refused).toEqual({ allowed: false, limit: "requestsPerMinute", retryAfterMs: interval });
      if (!refused.allowed) expect(retryAfterSeconds(refused)).toBe(Math.ceil(interval / 1000));
    });

    it.each([5, 7])("admits a client that waits retryAfterMs (%i per minute), and not one that waits 1 ms less", async (perMinute) => {
      const key = newKey();
      const limits = { requestsPerMinute: perMinute };
      await admitMany(key, limits, perMinute);
      const refused = await limiter.admit(key, limits);
      if (refused.allowed) throw new Error("expected a refusal");
      time += refused.retryAfterMs - 1;
      expect(await limiter.admit(key, limits)).toMatchObject({ allowed: false, retryAfterMs: 1 });
      time += 1;
      expect(await limiter.admit(key, limits)).toEqual({ allowed: true });
      expect((await limiter.admit(key, limits)).allowed).toBe(false);
    });

    it("refills continuously: half a window brings half the budget back, a whole window all of it", async () => {
      const key = newKey();
      const limits = { requestsPerMinute: 10 };
      await admitMany(key, limits, 10);
      time += 30_000;
      expect(allowedCount(await admitMany(key, limits, 10))).toBe(5);
      time += 60_000;
      expect(allowedCount(await admitMany(key, limits, 11))).toBe(10);
    });

    it("does not count refused requests", async () => {
      const key = newKey();
      const limits = { requestsPerMinute: 2 };
      await admitMany(key, limits, 2);
      expect(allowedCount(await admitMany(key, limits, 20))).toBe(0);
      time += 30_000;
      expect(await limiter.admit(key, limits)).toEqual({ allowed: true });
    });

    it("refuses the request after tokens charged past the budget, until enough has refilled", async () => {
      const key = newKey();
      const limits = { tokensPerMinute: 1000 };
      expect(await limiter.admit(key, limits)).toEqual({ allowed: true });
      await limiter.charge(key, 1500, limits);
      // 500 tokens over, refilling at 1000 a minute, plus room for one more token.
      expect(await limiter.admit(key, limits)).toEqual({ allowed: false, limit: "tokensPerMinute", retryAfterMs: 30_060 });
      time += 30_059;
      expect((await limiter.admit(key, limits)).allowed).toBe(false);
      time += 1;
      expect(await limiter.admit(key, limits)).toEqual({ allowed: true });
    });

    it("keeps admitting while the tokens charged stay within the budget", async () => {
      const key = newKey();
      const limits = { tokensPerMinute: 1000 };
      for (let i = 0; i < 9; i++) {
        expect(await limiter.admit(key, limits)).toEqual({ allowed: true });
        await limiter.charge(key, 100, limits);
      }
      expect(await limiter.admit(key, limits)).toEqual({ allowed: true });
    });

    it("names the limit that frees up last when both refuse, and its wait is enough for both", async () => {
      const key = newKey();
      const limits = { requestsPerMinute: 2, tokensPerMinute: 1000 };
      await admitMany(key, limits, 2);
      await limiter.charge(key, 1500, limits);
      const refused = await limiter.admit(key, limits);
      expect(refused).toEqual({ allowed: false, limit: "tokensPerMinute", retryAfterMs: 30_060 });
      time += 30_060;
      expect(await limiter.admit(key, limits)).toEqual({ allowed: true });
    });

    it("keeps keys independent", async () => {
      const [first, second] = [newKey(), newKey()];
      const limits = { requestsPerMinute: 3, tokensPerMinute: 100 };
      await admitMany(first, limits, 3);
      await limiter.charge(first, 500, limits);
      expect((await limiter.admit(first, limits)).allowed).toBe(false);
      expect(allowedCount(await admitMany(second, limits, 3))).toBe(3);
    });

    it("treats absent limits as unlimited", async () => {
      const key = newKey();
      expect(allowedCount(await admitMany(key, {}, 200))).toBe(200);
      await limiter.charge(key, 1_000_000, {});
      await limiter.charge(key, 1_000_000, { requestsPerMinute: 1 });
      // Only a requests limit: tokens are not counted against anything.
      expect(await limiter.admit(key, { requestsPerMinute: 1 })).toEqual({ allowed: true });
      // Only a tokens limit, never charged: requests are not counted against anything.
      expect(allowedCount(await admitMany(key, { tokensPerMinute: 10 }, 200))).toBe(200);
    });

    it("charges nothing for zero tokens", async () => {
      const key = newKey();
      const limits = { tokensPerMinute: 1 };
      await limiter.charge(key, 0, limits);
      expect(await limiter.admit(key, limits)).toEqual({ allowed: true });
    });

    it("never admits past the limit under concurrent calls", async () => {
      const key = newKey();
      const limits = { requestsPerMinute: 10 };
      const answers = await Promise.all(Array.from({ length: 30 }, () => limiter.admit(key, limits)));
      expect(allowedCount(answers)).toBe(10);
    });

    it.each([
      ["zero requests per minute", { requestsPerMinute: 0 }],
      ["negative tokens per minute", { tokensPerMinute: -5 }],
      ["NaN", { requestsPerMinute: Number.NaN }],
      ["Infinity", { tokensPerMinute: Number.POSITIVE_INFINITY }],
    ])("rejects a limit of %s with a RangeError", async (_name, limits) => {
      await expect(limiter.admit(newKey(), limits)).rejects.toThrow(RangeError);
    });

    it.each([-1, Number.NaN, Number.POSITIVE_INFINITY])("rejects a token count of %s with a RangeError", async (tokens) => {
      await expect(limiter.charge(newKey(), tokens, { tokensPerMinute: 10 })).rejects.toThrow(RangeError);
    });

    it("rejects an empty key id", async () => {
      await expect(limiter.admit("", { requestsPerMinute: 1 })).rejects.toThrow(RangeError);
    });
  });
}
