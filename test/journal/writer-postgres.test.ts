import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import type { CallRecord } from "../../src/call/record.js";
import { journalEntryOf } from "../../src/journal/entry.js";
import { createJournalWriter } from "../../src/journal/writer.js";
import { openPostgresStore } from "../../src/store/postgres.js";
import type { JournalEntry } from "../../src/store/store.js";
import { startFakeProvider } from "../support/fake-provider.js";
import { startTestGateway } from "../support/gateway.js";
import { startTcpProxy } from "../support/tcp-proxy.js";
import { postgresUrl, requirePostgres } from "../store/postgres-support.js";
import { captureLogger, tempDir, until } from "./support.js";
import { writerCases } from "./writer-cases.js";

// Each store gets a schema of its own in the `test` database, named after this run and dropped after it.
const run = `passthrough_journal_${randomBytes(4).toString("hex")}`;
if (await requirePostgres("the journal writer over PostgreSQL")) {
  let count = 0;
  afterAll(async () => {
    const client = new pg.Client(postgresUrl);
    await client.connect();
    const { rows } = await client.query<{ name: string }>("SELECT nspname AS name FROM pg_namespace WHERE nspname LIKE $1", [`${run}%`]);
    for (const { name } of rows) await client.query(`DROP SCHEMA "${name}" CASCADE`);
    await client.end();
  });

  describe("over PostgreSQL", () => {
    writerCases(() => openPostgresStore({ url: postgresUrl, schema: `${run}_${++count}` }));
  });

  describe("the journal writer with PostgreSQL taken away and brought back", () => {
    it("answers calls, spools their entries, and writes every one exactly once when the database is back", async () => {
      const target = new URL(postgresUrl);
      const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
      const proxied = new URL(postgresUrl);
      proxied.port = String(proxy.port);
      const schema = `${run}_outage`;
      const store = await openPostgresStore({ url: proxied.href, schema, connectTimeoutMs: 1000 });
      const log = captureLogger();
      const spoolFile = join(tempDir(), "journal.spool");
      const writer = createJournalWriter({ store, queueSize: 5, batchSize: 4, spoolFile, logger: log.logger, retryMs: 20, maxRetryMs: 200, writeTimeoutMs: 1000 });
      const provider = await startFakeProvider();
      const keys: string[] = [];
      const gateway = await startTestGateway({ providers: [{ name: "local", baseUrl: provider.url, retries: 0 }] }, {}, {
        onCallEnd: [
          (call: CallRecord) => {
            keys.push(call.journalKey);
            writer.write(journalEntryOf(call));
          },
        ],
      });
      const call = async (n: number) => {
        const response = await fetch(`${gateway.url}/api/v1/prompts/passthrough/local/`, { method: "POST", body: JSON.stringify({ model: "m", n }) });
        expect(response.status).toBe(200);
        await response.json();
      };
      try {
        for (let n = 0; n < 6; n++) await call(n);
        await until(() => writer.stats().written === 6, "the first entries are written");

        await proxy.close();
        for (let n = 6; n < 30; n++) await call(n);
        await until(() => writer.stats().spooled > 0, "entries are spooled");
        expect(existsSync(spoolFile)).toBe(true);
        expect(writer.stats().storeReachable).toBe(false);
        expect(writer.stats().queued).toBeLessThanOrEqual(5);
        expect(log.text()).toContain("journal store unavailable");

        await proxy.reopen();
        await until(() => writer.stats().written >= 30 && writer.stats().queued === 0 && writer.stats().spooled === 0 && !existsSync(spoolFile), "the spool is replayed", 20_000);
        await writer.flush();
        expect(writer.stats()).toMatchObject({ dropped: 0, storeReachable: true });
        expect(keys).toHaveLength(30);

        const client = new pg.Client(postgresUrl);
        await client.connect();
        const { rows } = await client.query<{ key: string; n: string }>(`SELECT key, count(*) AS n FROM "${schema}".journal GROUP BY key`);
        await client.end();
        expect(rows.map((row) => row.key).sort()).toEqual([...keys].sort());
        expect(rows.every((row) => row.n === "1")).toBe(true);
        for (const key of keys) {
          const entry = (await store.getJournalEntry(key)) as JournalEntry;
          expect(entry.key).toBe(key);
          expect(JSON.parse(entry.requestBody!)).toMatchObject({ model: "m" });
        }
      } finally {
        await gateway.close();
        await provider.close();
        await writer.close(2000);
        await store.close();
        await proxy.close();
      }
      expect(existsSync(spoolFile) ? readFileSync(spoolFile, "utf8") : "").toBe("");
    });
  });
}
