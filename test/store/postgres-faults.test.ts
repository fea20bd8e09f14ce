import { randomBytes } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { openPostgresStore } from "../../src/store/postgres.js";
import { startTcpProxy, type TcpProxy } from "../support/tcp-proxy.js";
import { postgresUrl, requirePostgres } from "./postgres-support.js";

// The PostgreSQL store behind a TCP proxy the test cuts and stalls: connections that break while
// idle in the pool, and a server that stops answering, fail calls UNAVAILABLE and nothing else.
const run = `passthrough_faults_${randomBytes(4).toString("hex")}`;

if (await requirePostgres("PostgreSQL store faults")) {
  afterAll(async () => {
    const client = new pg.Client(postgresUrl);
    await client.connect();
    const { rows } = await client.query<{ name: string }>("SELECT nspname AS name FROM pg_namespace WHERE nspname LIKE $1", [`${run}%`]);
    for (const { name } of rows) await client.query(`DROP SCHEMA "${name}" CASCADE`);
    await client.end();
  });

  async function proxiedStore(schema: string, options: { queryTimeoutMs?: number } = {}) {
    const target = new URL(postgresUrl);
    const proxy: TcpProxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
    const url = new URL(postgresUrl);
    url.port = String(proxy.port);
    const store = await openPostgresStore({ url: url.href, schema: `${run}_${schema}`, connectTimeoutMs: 1000, ...options });
    return { proxy, store };
  }

  const failure = (promise: Promise<unknown>) => promise.then(() => undefined, (error: unknown) => error);

  describe("PostgreSQL store faults", () => {
    it("survives pooled connections that break while idle, and answers again once the server is back", async () => {
      const { proxy, store } = await proxiedStore("idle", {});
      try {
        await Promise.all([store.ping(), store.ping(), store.ping()]);
        await proxy.close();
        await new Promise((resolve) => setTimeout(resolve, 50));
        const error = await failure(store.countKeys());
        expect(error).toBeInstanceOf(ConnectError);
        expect((error as ConnectError).code).toBe(Code.Unavailable);
        await proxy.reopen();
        expect(await store.countKeys()).toBe(0);
      } finally {
        await store.close();
        await proxy.close();
      }
    });

    it("fails a query the server does not answer within queryTimeoutMs, and goes on once it answers", async () => {
      const { proxy, store } = await proxiedStore("stall", { queryTimeoutMs: 300 });
      try {
        await store.ping();
        proxy.stall();
        const started = Date.now();
        const error = await failure(store.countKeys());
        expect(Date.now() - started).toBeLessThan(3000);
        expect(error).toBeInstanceOf(ConnectError);
        expect((error as ConnectError).code).toBe(Code.Unavailable);
        expect((error as ConnectError).message).toBe("[unavailable] the key store is unavailable");
        proxy.resume();
        expect(await store.countKeys()).toBe(0);
      } finally {
        proxy.resume();
        await store.close();
        await proxy.close();
      }
    });
  });
}
