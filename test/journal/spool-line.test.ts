import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { reviveEntry, spoolLine } from "../../src/journal/spool.js";
import type { JournalEntry } from "../../src/store/store.js";
import { entry as storeEntry } from "../store/contract-journal.js";

// The store contract's entry, every field set, with a request body that JSON escaping would change.
const entry = (over: Partial<JournalEntry> = {}): JournalEntry =>
  storeEntry(1, { requestBody: '{"model":"m","messages":[{"role":"user","content":"hi \\"there\\"\\ttab"}]}', ...over });

describe("spool lines", () => {
  it("carry the bodies as they are after the head, and read back to the same entry", () => {
    const original = entry();
    const line = spoolLine(original);
    expect(line).not.toContain("\n");
    // The bodies' bytes follow the head unescaped.
    expect(line.endsWith(`\t${original.requestBody}${original.responseBody}`)).toBe(true);
    expect(reviveEntry(line)).toEqual(original);
  });

  it("keep null bodies apart from empty ones, and bodies with tabs, quotes and any character", () => {
    for (const over of [
      { requestBody: null, responseBody: null },
      { requestBody: "", responseBody: null },
      { requestBody: null, responseBody: "" },
      { requestBody: '\t{"a":"\t"}\t', responseBody: "é ☃ 𝄞 \u0000 \r" },
      { error: "bad\tthing\nhappened", status: 502, grpcCode: 14, responseBody: null },
    ]) {
      const original = entry(over);
      expect(reviveEntry(spoolLine(original))).toEqual(original);
    }
  });

  it("fall back to the entry's whole JSON when a body holds a newline, which would cut the line", () => {
    const original = entry({ requestBody: '{\n  "model": "m"\n}' });
    const line = spoolLine(original);
    expect(line).not.toContain("\n");
    expect(line).toBe(JSON.stringify(original));
    expect(reviveEntry(line)).toEqual(original);
  });

  it("read lines written as whole JSON, as earlier versions wrote every entry", () => {
    const original = entry();
    expect(reviveEntry(JSON.stringify(original))).toEqual(original);
  });

  it("refuse a line cut short or run on, and a head that is not an entry's", () => {
    const line = spoolLine(entry());
    for (const cut of [line.length - 1, line.indexOf("\t") + 1, line.indexOf("\t"), 20]) expect(reviveEntry(line.slice(0, cut))).toBeUndefined();
    expect(reviveEntry(`${line}x`)).toBeUndefined();
    expect(reviveEntry(line.replace('"requestChars":', '"requestChars":-'))).toBeUndefined();
    expect(reviveEntry(`[1]\t`)).toBeUndefined();
    expect(reviveEntry("")).toBeUndefined();
  });

  it("read back any entry without a newline in its bodies exactly (property)", () => {
    const text = fc.option(fc.string({ unit: "binary" }).filter((s) => !s.includes("\n")), { nil: null });
    fc.assert(
      fc.property(text, text, fc.option(fc.string(), { nil: null }), (requestBody, responseBody, error) => {
        const original = entry({ requestBody, responseBody, error });
        expect(reviveEntry(spoolLine(original))).toEqual(original);
      }),
    );
  });
});
