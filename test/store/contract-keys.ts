import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { digestSecret, keyDigests, matchDigest, newApiKey } from "../../src/auth/api-keys.js";
import type { Store } from "../../src/store/store.js";

const t = (iso: string) => new Date(`2030-01-01T${iso}Z`);

/** The key half of the store contract; `open` gives a fresh store, or one on `sameAs`'s database. */
export function keyCases(open: (sameAs?: Store) => Promise<Store>): void {
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
      expect(matchDigest(keyDigests(rotated!), Buffer.from(next.digest, "hex"), t("00:10:00"))).toBe("current");
      expect(matchDigest(keyDigests(rotated!), Buffer.from(original.digest, "hex"), t("11:59:59"))).toBe("previous");
      expect(matchDigest(keyDigests(rotated!), Buffer.from(original.digest, "hex"), t("12:00:00"))).toBeUndefined();
      expect(matchDigest(keyDigests(rotated!), Buffer.from(digestSecret("something else"), "hex"), t("00:10:00"))).toBeUndefined();
    });

    it("rotates twice: the second replaces the pending previous secret, and a secret works throughout", async () => {
      const store = await open();
      const [first, second, third] = [newApiKey(), newApiKey(), newApiKey()];
      await store.createKey({ id: "k", digest: first.digest, name: "r" });
      await store.rotateKey("k", { digest: second.digest, previousValidUntil: t("12:00:00") });
      const twice = await store.rotateKey("k", { digest: third.digest, previousValidUntil: t("13:00:00") });
      expect(twice).toMatchObject({ digest: third.digest, previousDigest: second.digest, previousValidUntil: t("13:00:00") });
      expect(matchDigest(keyDigests(twice!), Buffer.from(first.digest, "hex"), t("00:00:00"))).toBeUndefined();
      expect(matchDigest(keyDigests(twice!), Buffer.from(second.digest, "hex"), t("00:00:00"))).toBe("previous");
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
}
