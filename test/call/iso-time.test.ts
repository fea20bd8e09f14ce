import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isoTimeOf } from "../../src/call/iso-time.js";

describe("isoTimeOf", () => {
  it("writes what toISOString writes, for times in any order (the cached second changing or not)", () => {
    const near = Date.UTC(2026, 11, 6, 23, 59, 59, 990);
    const time = fc.oneof(fc.integer({ min: 0, max: 253_402_300_799_999 }), fc.integer({ min: near - 3000, max: near + 3000 }));
    fc.assert(
      fc.property(fc.array(time, { minLength: 1, maxLength: 20 }), (times) => {
        for (const ms of times) expect(isoTimeOf(ms)).toBe(new Date(ms).toISOString());
      }),
    );
  });

  it("falls back to toISOString for six-digit years, times before 1970 and fractions of a millisecond", () => {
    for (const ms of [-1, -86_400_000, 253_402_300_800_000, 8.64e15, 1.5, Date.UTC(2026, 0, 1) + 0.25]) {
      expect(isoTimeOf(ms)).toBe(new Date(ms).toISOString());
    }
  });
});
