import { randomBytes } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { openStore } from "../../src/store/open.js";
import { openPostgresStore } from "../../src/store/postgres.js";
import type { Store } from "../../src/store/store.js";
import { runStoreContract } from "./contract.js";
import { closedPort, postgresUrl, requirePostgres } from "./postgres-support.js";

// Each store gets a schema of its own in the `test` database, named after this run and dropped after it.
const run = `passthrough_test_${randomBytes(4).toString("hex")}`;
if (await requirePostgres("PostgreSQL store")) {
  const schemas = new WeakMap<Store, string>();
  let count = 0;
  afterAll(async () => {
    const client = new pg.Client(postgresUrl);
    await client.connect();
    const { rows } = await client.query<{ name: string }>("SELECT nspname AS name FROM pg_namespace WHERE nspname LIKE $1", [`${run}%`]);
    for (const { name } of rows) await client.query(`DROP SCHEMA "${name}" CASCADE`);
    await client.end();
  });

  runStoreContract({
    name: "PostgreSQL",
    newStore: async ({ sameAs } = {}) => {
      const schema = sameAs ? (schemas.get(sameAs) as string) : `${run}_${++count}`;
      const store = await openPostgresStore({ url: postgresUrl, schema });
      schemas.set(store, schema);
      return store;
    },
  });

  describe("PostgreSQL store", () => {
    it("applies each migration once when several instances open a fresh schema at once", async () => {
      const schema = `${run}_race`;
      const stores = await Promise.all(Array.from({ length: 6 }, () => openStore(postgresUrl, { schema })));
      await Promise.all(stores.map((store) => store.close()));
      const client = new pg.Client(postgresUrl);
      await client.connect();
      const { rows } = await client.query(`SELECT version, name FROM "${schema}".schema_migrations ORDER BY version`);
      await client.end();
      expect(rows).toEqual([
        { version: 1, name: "api keys" },
        { version: 2, name: "journal" },
      ]);
    });

    it("fails UNAVAILABLE at open, without the password, when the server is not there", async () => {
      const url = `postgres://someone:hunter2@127.0.0.1:${await closedPort()}/test`;
      const error = await openStore(url, { schema: `${run}_closed` }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConnectError);
      expect((error as ConnectError).code).toBe(Code.Unavailable);
      expect((error as ConnectError).message).toBe("[unavailable] the store is unavailable");
      expect(String(error)).not.toContain("hunter2");
      expect((error as ConnectError).cause).toBeDefined();
    });

    it("refuses a schema name that is not a plain identifier", async () => {
      await expect(openPostgresStore({ url: postgresUrl, schema: 'x"; DROP TABLE y; --' })).rejects.toThrow("plain identifier");
    });
  });
}
