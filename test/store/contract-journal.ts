import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import type { JournalEntry, Store } from "../../src/store/store.js";

const t = (iso: string) => new Date(`2030-01-01T${iso}Z`);
export const hex = (n: number) => n.toString(16).padStart(64, "0");

/** A journal entry with every field set; `overrides` for what a case is about. */
export function entry(n: number, overrides: Partial<JournalEntry> = {}): JournalEntry {
  return {
    key: hex(n),
    time: t("00:00:00.000"),
    principal: "key-a",
    provider: "openai",
    protocol: "rest",
    requestBody: JSON.stringify({ model: "m", messages: [{ role: "user", content: `n${n}` }] }),
    responseBody: JSON.stringify({ choices: [], usage: { total_tokens: 3 } }),
    status: 200,
    grpcCode: 0,
    upstreamStatus: 200,
    durationMs: 12.5,
    promptTokens: 1,
    completionTokens: 2,
    totalTokens: 3,
    error: null,
    ...overrides,
  };
}

/** The journal half of the store contract. */
export function journalCases(open: () => Promise<Store>): void {
  describe("journal", () => {
    it("writes a batch and reads every field back, nulls included", async () => {
      const store = await open();
      const full = entry(1, { time: t("00:00:01.250") });
      const sparse = entry(2, {
        provider: null, requestBody: "{not json", responseBody: null, status: 401, grpcCode: 16, upstreamStatus: null,
        promptTokens: null, completionTokens: null, totalTokens: null, error: "the key is revoked",
      });
      expect(await store.writeJournal([full, sparse])).toBe(2);
      expect(await store.getJournalEntry(full.key)).toEqual(full);
      expect(await store.getJournalEntry(sparse.key)).toEqual(sparse);
      expect(await store.getJournalEntry(hex(99))).toBeUndefined();
      expect(await store.writeJournal([])).toBe(0);
    });

    it("is idempotent on the entry key: the same batch twice, or a key twice in a batch, is written once", async () => {
      const store = await open();
      const batch = [entry(1), entry(2), entry(3)];
      expect(await store.writeJournal(batch)).toBe(3);
      expect(await store.writeJournal(batch)).toBe(0);
      expect(await store.writeJournal([entry(4), entry(4, { status: 500 }), entry(1, { status: 500 })])).toBe(1);
      const page = await store.listJournal({ principal: "key-a", pageSize: 100 });
      expect(page.entries).toHaveLength(4);
      expect((await store.getJournalEntry(hex(1)))?.status).toBe(200);
    });

    it("keeps a NUL character from failing a batch", async () => {
      const store = await open();
      expect(await store.writeJournal([entry(1, { requestBody: "a\0b" }), entry(2)])).toBe(2);
      expect((await store.getJournalEntry(hex(1)))?.requestBody).toBe("a\uFFFDb");
    });

    it.each([1, 2, 3, 7, 1000])("pages newest first on (time, key) across equal times, page size %i", async (pageSize) => {
      const store = await open();
      const sameTime = Array.from({ length: 7 }, (_, i) => entry(10 + i, { time: t("00:00:05") }));
      const others = [entry(1, { time: t("00:00:01") }), entry(2, { time: t("00:00:09") }), entry(3, { time: t("00:00:05"), principal: "key-b" })];
      await store.writeJournal([...sameTime, ...others]);
      const keys: string[] = [];
      let pageToken: string | undefined;
      let pages = 0;
      do {
        const page = await store.listJournal({ principal: "key-a", pageSize, pageToken });
        expect(page.entries.length).toBeLessThanOrEqual(pageSize);
        keys.push(...page.entries.map((e) => e.key));
        pageToken = page.nextPageToken;
        pages++;
      } while (pageToken);
      const expected = [hex(2), ...sameTime.map((e) => e.key).reverse(), hex(1)];
      expect(keys).toEqual(expected);
      expect(pages).toBe(Math.max(1, Math.ceil(expected.length / pageSize)));
    });

    it("filters by provider, and pages within the filter", async () => {
      const store = await open();
      await store.writeJournal([
        entry(1, { provider: "openai", time: t("00:00:01") }),
        entry(2, { provider: "local", time: t("00:00:02") }),
        entry(3, { provider: "openai", time: t("00:00:03") }),
        entry(4, { provider: null, time: t("00:00:04") }),
        entry(5, { provider: "openai", time: t("00:00:05") }),
      ]);
      const first = await store.listJournal({ principal: "key-a", pageSize: 2, provider: "openai" });
      expect(first.entries.map((e) => e.key)).toEqual([hex(5), hex(3)]);
      const second = await store.listJournal({ principal: "key-a", pageSize: 2, provider: "openai", pageToken: first.nextPageToken });
      expect(second).toEqual({ entries: [expect.objectContaining({ key: hex(1) })] });
      expect((await store.listJournal({ principal: "key-a", pageSize: 10, provider: "none" })).entries).toEqual([]);
    });

    it("lists every principal's entries without a principal, paged newest first, filtered by provider too", async () => {
      const store = await open();
      await store.writeJournal([
        entry(1, { principal: "key-a", time: t("00:00:01") }),
        entry(2, { principal: "key-b", time: t("00:00:02"), provider: "local" }),
        entry(3, { principal: "anonymous", time: t("00:00:03") }),
        entry(4, { principal: "key-b", time: t("00:00:03") }),
        entry(5, { principal: "key-a", time: t("00:00:05"), provider: "local" }),
      ]);
      const keys: string[] = [];
      let pageToken: string | undefined;
      do {
        const page = await store.listJournal({ pageSize: 2, pageToken });
        keys.push(...page.entries.map((e) => e.key));
        pageToken = page.nextPageToken;
      } while (pageToken);
      expect(keys).toEqual([hex(5), hex(4), hex(3), hex(2), hex(1)]);
      const local = await store.listJournal({ pageSize: 10, provider: "local" });
      expect(local.entries.map((e) => e.key)).toEqual([hex(5), hex(2)]);
      expect((await store.listJournal({ principal: "key-b", pageSize: 10 })).entries.map((e) => e.key)).toEqual([hex(4), hex(2)]);
    });

    it.each([
      { name: "garbage", token: "not a token!", provider: undefined },
      { name: "base64 of something else", token: Buffer.from('{"x":1}').toString("base64url"), provider: undefined },
      { name: "a token made for another filter", token: "filter", provider: "local" },
    ])("refuses a page token that is $name as INVALID_ARGUMENT", async ({ token, provider }) => {
      const store = await open();
      await store.writeJournal([entry(1), entry(2)]);
      const pageToken = token === "filter" ? (await store.listJournal({ principal: "key-a", pageSize: 1 })).nextPageToken : token;
      const error = await store.listJournal({ principal: "key-a", pageSize: 1, pageToken, provider }).catch((e: unknown) => e);
      expect(ConnectError.from(error).code).toBe(Code.InvalidArgument);
    });

    it("deletes entries older than a time, in batches, and says how many", async () => {
      const store = await open();
      const old = Array.from({ length: 5 }, (_, i) => entry(i + 1, { time: t(`00:00:0${i}`), principal: i % 2 ? "key-a" : "key-b" }));
      await store.writeJournal([...old, entry(20, { time: t("00:01:00") }), entry(21, { time: t("00:02:00") })]);
      expect(await store.deleteJournalBefore(t("00:01:00"), { batchSize: 2 })).toBe(5);
      expect((await store.listJournal({ principal: "key-a", pageSize: 10 })).entries.map((e) => e.key)).toEqual([hex(21), hex(20)]);
      expect(await store.deleteJournalBefore(t("00:01:00"), { batchSize: 2 })).toBe(0);
      expect(await store.deleteJournalBefore(t("00:01:00.001"))).toBe(1);
    });
  });
}
