import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { openSqliteStore } from "../../src/store/sqlite.js";
import type { Store } from "../../src/store/store.js";
import { runStoreContract } from "./contract.js";

const dir = mkdtempSync(join(tmpdir(), "passthrough-sqlite-"));
const paths = new WeakMap<Store, string>();
let count = 0;
afterAll(() => rmSync(dir, { recursive: true, force: true }));

runStoreContract({
  name: "SQLite",
  newStore: async ({ sameAs } = {}) => {
    const path = sameAs ? (paths.get(sameAs) as string) : join(dir, `store-${++count}.db`);
    const store = await openSqliteStore({ path });
    paths.set(store, path);
    return store;
  },
});

describe("SQLite store", () => {
  it("creates the folder, uses WAL and records the migrations it applied", async () => {
    const path = join(dir, "nested", "deeper", "x.db");
    const store = await openSqliteStore({ path });
    await store.close();
    const db = new Database(path, { readonly: true });
    expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    expect(db.prepare("SELECT version, name FROM schema_migrations ORDER BY version").all()).toEqual([
      { version: 1, name: "api keys" },
      { version: 2, name: "journal" },
    ]);
    db.close();
  });

  it("refuses a database migrated by a newer passthrough", async () => {
    const path = join(dir, "newer.db");
    await (await openSqliteStore({ path })).close();
    const db = new Database(path);
    db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 0)").run();
    db.close();
    const error = await openSqliteStore({ path }).catch((e: unknown) => e);
    expect(ConnectError.from(error).code).toBe(Code.FailedPrecondition);
    expect((error as Error).message).toContain("newer");
  });

  it("fails UNAVAILABLE, without the path, when the file is not a database", async () => {
    const path = join(dir, "not-a-db.db");
    writeFileSync(path, "this is not a database, it is plain text long enough to be read as a header".repeat(20));
    const error = await openSqliteStore({ path }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.Unavailable);
    expect((error as ConnectError).message).not.toContain(dir);
  });

  it("fails a write UNAVAILABLE when another connection holds the lock past the busy timeout, and writes once it is free", async () => {
    // One thread cannot wait for a lock it holds itself; test/cli/keys.test.ts shows a CLI waiting out another process's lock.
    const path = join(dir, "busy.db");
    const store = await openSqliteStore({ path, busyTimeoutMs: 50 });
    const other = new Database(path);
    other.exec("BEGIN IMMEDIATE");
    const error = await store.createKey({ id: "k", digest: "11".repeat(32), name: "a" }).catch((e: unknown) => e);
    expect(ConnectError.from(error).code).toBe(Code.Unavailable);
    other.exec("COMMIT");
    await store.createKey({ id: "k", digest: "11".repeat(32), name: "a" });
    expect(await store.countKeys()).toBe(1);
    other.close();
    await store.close();
  });
});
