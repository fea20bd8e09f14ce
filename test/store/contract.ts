import { Code, ConnectError } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { digestSecret, matchDigest, newApiKey } from "../../src/auth/api-keys.js";
import type { JournalEntry, Store } from "../../src/store/store.js";

export interface StoreContractOptions {
  name: string;
  /** A store on a fresh, empty database; with `sameAs`, another store opened on that store's database. */
  newStore(options?: { sameAs?: Store }): Promise<Store>;
}

const t = (iso: string) => new Date(`2030-01-01T${iso}Z`);
const hex = (n: number) => n.toString(16).padStart(64, "0");

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

/** The storage contract of src/store/store.ts, run against every implementation. */
export function runStoreContract({ name, newStore }: StoreContractOptions): void {
  describe(`Store contract: ${name}`, () => {
    const opened: Store[] = [];
    const open = async (sameAs?: Store) => {
      const store = await newStore({ sameAs });
      opened.push(store);
      return store;
    };
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((store) => store.close()));
    });

    describe("keys", () => {
      it("creates a key and reads every field back", async () => {
        const store = await open();
        const expiresAt = t("01:00:00.123");
        const created = await store.createKey({
          id: "full", digest: "aa".repeat(32), name: "ci", allowedProviders: ["openai", "local"], requestsPerMinute: 60,
          tokensPerMinute: 1000, admin: true, createdAt: t("00:00:00.001"), expiresAt,
        });
        expect(created).toMatchObject({
          id: "full", digest: "aa".repeat(32), previousDigest: null, previousValidUntil: null, name: "ci",
          allowedProviders: ["openai", "local"], requestsPerMinute: 60, tokensPerMinute: 1000, admin: true,
          createdAt: t("00:00:00.001"), expiresAt, revokedAt: null, lastUsedAt: null,
        });
        expect(await store.getKey("full")).toEqual(created);
        const minimal = await store.createKey({ id: "min", digest: "bb".repeat(32), name: "plain" });
        expect(minimal).toMatchObject({ allowedProviders: null, requestsPerMinute: null, tokensPerMinute: null, admin: false, expiresAt: null });
        expect(minimal.version).toBeGreaterThan(created.version);
        expect(await store.getKey("nope")).toBeUndefined();
        expect(await store.countKeys()).toBe(2);
      });

      it("lists keys oldest first, with no digest", async () => {
        const store = await open();
        await store.createKey({ id: "second", digest: "11".repeat(32), name: "b", createdAt: t("00:00:02") });
        await store.createKey({ id: "first", digest: "22".repeat(32), name: "a", createdAt: t("00:00:01") });
        const listed = await store.listKeys();
        expect(listed.map((key) => key.id)).toEqual(["first", "second"]);
        for (const key of listed) {
          expect(Object.keys(key)).not.toContain("digest");
          expect(Object.keys(key)).not.toContain("previousDigest");
          expect(JSON.stringify(key)).not.toMatch(/1111|2222/);
        }
      });

      it("refuses a second key with the same id as ALREADY_EXISTS", async () => {
        const store = await open();
        await store.createKey({ id: "twice", digest: "11".repeat(32), name: "a" });
        const error = await store.createKey({ id: "twice", digest: "22".repeat(32), name: "b" }).catch((e: unknown) => e);
        expect(ConnectError.from(error).code).toBe(Code.AlreadyExists);
        expect((await store.getKey("twice"))?.name).toBe("a");
      });

      it("revokes once: again is a no-op that still says it exists; an unknown key says false", async () => {
        const store = await open();
        const created = await store.createKey({ id: "k", digest: "11".repeat(32), name: "a" });
        expect(await store.revokeKey("k", t("00:05:00"))).toBe(true);
        const revoked = await store.getKey("k");
        expect(revoked?.revokedAt).toEqual(t("00:05:00"));
        expect(revoked!.version).toBeGreaterThan(created.version);
        expect(await store.revokeKey("k", t("00:09:00"))).toBe(true);
        expect(await store.getKey("k")).toEqual(revoked);
        expect(await store.revokeKey("unknown")).toBe(false);
      });

      it("rotates: the old secret works until the grace ends, the new one at once", async () => {
        const store = await open();
        const original = newApiKey();
        await store.createKey({ id: original.id, digest: original.digest, name: "r" });
        const next = newApiKey(original.id);
        const rotated = await store.rotateKey(original.id, { digest: next.digest, previousValidUntil: t("12:00:00"), at: t("00:10:00") });
        expect(rotated).toMatchObject({ digest: next.digest, previousDigest: original.digest, previousValidUntil: t("12:00:00"), updatedAt: t("00:10:00") });
        expect(matchDigest(rotated!, next.digest, t("00:10:00"))).toBe("current");
        expect(matchDigest(rotated!, original.digest, t("11:59:59"))).toBe("previous");
        expect(matchDigest(rotated!, original.digest, t("12:00:00"))).toBeUndefined();
        expect(matchDigest(rotated!, digestSecret("something else"), t("00:10:00"))).toBeUndefined();
      });

      it("rotates twice: the second replaces the pending previous secret, and a secret works throughout", async () => {
        const store = await open();
        const [first, second, third] = [newApiKey(), newApiKey(), newApiKey()];
        await store.createKey({ id: "k", digest: first.digest, name: "r" });
        await store.rotateKey("k", { digest: second.digest, previousValidUntil: t("12:00:00") });
        const twice = await store.rotateKey("k", { digest: third.digest, previousValidUntil: t("13:00:00") });
        expect(twice).toMatchObject({ digest: third.digest, previousDigest: second.digest, previousValidUntil: t("13:00:00") });
        expect(matchDigest(twice!, first.digest, t("00:00:00"))).toBeUndefined();
        expect(matchDigest(twice!, second.digest, t("00:00:00"))).toBe("previous");
      });

      it("rotates concurrently without losing a secret: one is current, the other previous", async () => {
        const store = await open();
        const other = await open(store);
        const [first, a, b] = [newApiKey(), newApiKey(), newApiKey()];
        await store.createKey({ id: "k", digest: first.digest, name: "r" });
        await Promise.all([
          store.rotateKey("k", { digest: a.digest, previousValidUntil: t("12:00:00") }),
          other.rotateKey("k", { digest: b.digest, previousValidUntil: t("12:00:00") }),
        ]);
        const key = (await store.getKey("k"))!;
        expect([key.digest, key.previousDigest].sort()).toEqual([a.digest, b.digest].sort());
      });

      it("does not rotate a revoked or unknown key", async () => {
        const store = await open();
        await store.createKey({ id: "k", digest: "11".repeat(32), name: "r" });
        await store.revokeKey("k");
        expect(await store.rotateKey("k", { digest: "22".repeat(32), previousValidUntil: t("12:00:00") })).toBeUndefined();
        expect((await store.getKey("k"))?.digest).toBe("11".repeat(32));
        expect(await store.rotateKey("unknown", { digest: "22".repeat(32), previousValidUntil: t("12:00:00") })).toBeUndefined();
      });

      it("touches last-used times in one batch, only forward, ignoring unknown ids, without a new version", async () => {
        const store = await open();
        for (const id of ["a", "b", "c"]) await store.createKey({ id, digest: `${id}`.repeat(64), name: id });
        await store.touchKeys(new Map([["a", t("01:00:00")], ["b", t("01:00:00")], ["ghost", t("01:00:00")]]));
        const before = await store.keyChangesSince(0);
        await store.touchKeys(new Map([["a", t("00:30:00")], ["b", t("02:00:00")]]));
        await store.touchKeys(new Map());
        const used = Object.fromEntries((await store.listKeys()).map((key) => [key.id, key.lastUsedAt]));
        expect(used).toEqual({ a: t("01:00:00"), b: t("02:00:00"), c: null });
        expect((await store.keyChangesSince(before.version)).keys).toEqual([]);
      });

      it("reports changes since a version: creations, revocations and rotations, in order", async () => {
        const store = await open();
        expect(await store.keyChangesSince(0)).toEqual({ version: 0, keys: [] });
        await store.createKey({ id: "a", digest: "11".repeat(32), name: "a" });
        await store.createKey({ id: "b", digest: "22".repeat(32), name: "b" });
        const seen = await store.keyChangesSince(0);
        expect(seen.keys.map((key) => key.id)).toEqual(["a", "b"]);
        await store.revokeKey("a");
        await store.rotateKey("b", { digest: "33".repeat(32), previousValidUntil: t("12:00:00") });
        const changes = await store.keyChangesSince(seen.version);
        expect(changes.keys.map((key) => [key.id, key.revokedAt !== null, key.digest])).toEqual([
          ["a", true, "11".repeat(32)],
          ["b", false, "33".repeat(32)],
        ]);
        expect(changes.version).toBeGreaterThan(seen.version);
        expect(await store.keyChangesSince(changes.version)).toEqual({ version: changes.version, keys: [] });
        expect((await store.keyChangesSince(0, 1)).keys.map((key) => key.id)).toEqual(["a"]);
      });
    });

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

    describe("the database", () => {
      it("answers ping", async () => {
        const store = await open();
        await expect(store.ping()).resolves.toBeUndefined();
      });

      it("opens the same database again with its data, and from two stores at once", async () => {
        const store = await open();
        await store.createKey({ id: "k", digest: "11".repeat(32), name: "a" });
        const [again, andAgain] = await Promise.all([open(store), open(store)]);
        expect((await again.getKey("k"))?.name).toBe("a");
        await andAgain.writeJournal([entry(1)]);
        expect(await again.getJournalEntry(hex(1))).toEqual(entry(1));
        await again.createKey({ id: "j", digest: "22".repeat(32), name: "b" });
        expect(await store.countKeys()).toBe(2);
      });

      const operations: Array<[string, (store: Store) => Promise<unknown>, string]> = [
        ["createKey", (s) => s.createKey({ id: "x", digest: "11".repeat(32), name: "x" }), "key store"],
        ["getKey", (s) => s.getKey("x"), "key store"],
        ["listKeys", (s) => s.listKeys(), "key store"],
        ["revokeKey", (s) => s.revokeKey("x"), "key store"],
        ["rotateKey", (s) => s.rotateKey("x", { digest: "22".repeat(32), previousValidUntil: new Date() }), "key store"],
        ["touchKeys", (s) => s.touchKeys(new Map([["x", new Date()]])), "key store"],
        ["countKeys", (s) => s.countKeys(), "key store"],
        ["keyChangesSince", (s) => s.keyChangesSince(0), "key store"],
        ["writeJournal", (s) => s.writeJournal([entry(1)]), "journal"],
        ["getJournalEntry", (s) => s.getJournalEntry(hex(1)), "journal"],
        ["listJournal", (s) => s.listJournal({ principal: "p", pageSize: 1 }), "journal"],
        ["deleteJournalBefore", (s) => s.deleteJournalBefore(new Date()), "journal"],
        ["ping", (s) => s.ping(), "store"],
      ];
      it.each(operations)("%s on a closed store fails UNAVAILABLE with a plain message and the cause", async (_, operation, subject) => {
        const store = await open();
        await store.close();
        await store.close();
        const error = await operation(store).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(error).toBeInstanceOf(ConnectError);
        expect((error as ConnectError).code).toBe(Code.Unavailable);
        expect((error as ConnectError).rawMessage).toBe(`the ${subject} is unavailable`);
        expect((error as ConnectError).cause).toBeDefined();
      });
    });
  });
}
