import { Code, ConnectError } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import type { Store } from "../../src/store/store.js";
import { entry, hex, journalCases } from "./contract-journal.js";
import { keyCases } from "./contract-keys.js";

export { entry } from "./contract-journal.js";

export interface StoreContractOptions {
  name: string;
  /** A store on a fresh, empty database; with `sameAs`, another store opened on that store's database. */
  newStore(options?: { sameAs?: Store }): Promise<Store>;
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

    keyCases(open);
    journalCases(open);

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
