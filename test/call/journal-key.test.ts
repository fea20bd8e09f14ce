import { describe, expect, it } from "vitest";
import { newJournalKey } from "../../src/call/journal-key.js";

describe("newJournalKey", () => {
  it("is 64 hex characters that begin with the time in milliseconds", () => {
    const at = Date.UTC(2026, 11, 2, 10, 0, 0, 123);
    const key = newJournalKey(at);
    expect(key).toMatch(/^[0-9a-f]{64}$/);
    expect(Number.parseInt(key.slice(0, 12), 16)).toBe(at);
  });

  it("sorts every key of a later millisecond after every key of an earlier one", () => {
    const earlier = Array.from({ length: 500 }, () => newJournalKey(1_700_000_000_000));
    const later = Array.from({ length: 500 }, () => newJournalKey(1_700_000_000_001));
    expect(earlier.reduce((a, b) => (a > b ? a : b)) < later.reduce((a, b) => (a < b ? a : b))).toBe(true);
  });

  it("never repeats and keeps the rest random, within one millisecond too", () => {
    const keys = Array.from({ length: 10_000 }, () => newJournalKey(1_700_000_000_000));
    expect(new Set(keys).size).toBe(keys.length);
    expect(new Set(keys.map((key) => key.slice(12, 20))).size).toBeGreaterThan(9_990);
  });
});
