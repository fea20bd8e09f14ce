import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { openStore } from "../../src/store/open.js";
import type { JournalEntry } from "../../src/store/store.js";
import { entry, hex } from "../store/contract-journal.js";
import { postgresUrl, probePostgres } from "../store/postgres-support.js";

// `passthrough journal show|list` as an operator runs them: the real CLI (bin/passthrough.js,
// built by `npm run build`) against a store written through the Store contract.
vi.setConfig({ testTimeout: 90_000 });

const bin = join(import.meta.dirname, "../../bin/passthrough.js");
const dir = mkdtempSync(join(tmpdir(), "passthrough-journal-cli-"));
const run = `passthrough_journal_cli_${randomBytes(4).toString("hex")}`;

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the real CLI in `dir`, with only PATH and `env` in its environment. */
function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd: dir, env: { PATH: process.env.PATH, ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

const at = (seconds: number) => new Date(Date.UTC(2030, 0, 1, 0, 0, seconds));
/** Oldest first: two principals, two providers, one entry with every absent field, one principal with a terminal escape. */
const entries: JournalEntry[] = [
  entry(1, { time: at(1), principal: "key-a", provider: "openai" }),
  entry(2, { time: at(2), principal: "key-b", provider: "local", protocol: "grpc" }),
  entry(3, {
    time: at(3), principal: "anonymous", provider: null, requestBody: "{not json", responseBody: null, status: 400, grpcCode: 3,
    upstreamStatus: null, promptTokens: null, completionTokens: null, totalTokens: null, error: "the body is not valid JSON",
  }),
  entry(4, { time: at(4), principal: "key-a", provider: "local", durationMs: 1234.4 }),
  entry(5, { time: at(5), principal: "key-\u001b[31m", provider: "openai" }),
];
const newestFirst = (list: JournalEntry[]) => list.map((e) => e.key).reverse();

interface Backend {
  name: string;
  /** The config file's database section for a fresh store. */
  database(label: string): { url: string; schema?: string };
}
const sqlite: Backend = { name: "SQLite", database: (label) => ({ url: `sqlite:${join(dir, `${label}.db`)}` }) };
const postgres: Backend = { name: "PostgreSQL", database: (label) => ({ url: postgresUrl, schema: `${run}_${label}` }) };

const unreachable = await probePostgres();
const backends = [sqlite, ...(unreachable === undefined || process.env.CI === "true" ? [postgres] : [])];
if (unreachable !== undefined && process.env.CI !== "true") console.warn(`journal CLI on PostgreSQL skipped: ${postgresUrl} unreachable: ${unreachable}`);

afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  if (unreachable !== undefined) return;
  const client = new pg.Client(postgresUrl);
  await client.connect();
  const { rows } = await client.query<{ name: string }>("SELECT nspname AS name FROM pg_namespace WHERE nspname LIKE $1", [`${run}%`]);
  for (const { name } of rows) await client.query(`DROP SCHEMA "${name}" CASCADE`);
  await client.end();
});

/** A config file for a store holding `written`. */
async function storeWith(backend: Backend, label: string, written: JournalEntry[]): Promise<string> {
  const database = backend.database(label);
  const store = await openStore(database.url, { schema: database.schema });
  await store.writeJournal(written);
  await store.close();
  const file = join(dir, `${label}-${backend.name}.yaml`);
  writeFileSync(file, `database: { url: "${database.url}"${database.schema ? `, schema: ${database.schema}` : ""} }\n`);
  return file;
}

describe.each(backends)("passthrough journal on $name", (backend) => {
  let config: string;
  beforeAll(async () => {
    if (backend === postgres && unreachable !== undefined) throw new Error(`PostgreSQL is unreachable in CI: ${unreachable}`);
    config = await storeWith(backend, "five", entries);
  });

  it("shows an entry as pretty JSON, in the shape of the REST answer", async () => {
    const result = await cli(["journal", "show", hex(4), "--config", config]);
    expect(result).toMatchObject({ code: 0, stderr: "" });
    expect(result.stdout).toMatch(/^\{\n {2}"key": /);
    expect(JSON.parse(result.stdout)).toEqual({
      key: hex(4),
      time: "2030-01-01T00:00:04Z",
      principal: "key-a",
      providerName: "local",
      protocol: "rest",
      requestBody: JSON.parse(entries[3].requestBody!),
      responseBody: JSON.parse(entries[3].responseBody!),
      httpStatus: 200,
      grpcCode: 0,
      grpcCodeName: "ok",
      upstreamStatus: 200,
      durationMs: 1234.4,
      usage: { promptTokens: 1, completionTokens: 2, totalTokens: 3 },
      error: "",
    });
    const sparse = JSON.parse((await cli(["journal", "show", hex(3), "--config", config])).stdout);
    expect(sparse).toMatchObject({ requestText: "{not json", providerName: "", grpcCodeName: "invalid_argument", error: "the body is not valid JSON" });
    expect(sparse).not.toHaveProperty("responseBody");
    expect(sparse).not.toHaveProperty("usage");
    expect(sparse).not.toHaveProperty("upstreamStatus");
  });

  it("fails with exit code 1 and one line on stderr for a key it does not hold", async () => {
    const result = await cli(["journal", "show", hex(99), "--config", config]);
    expect(result).toEqual({ code: 1, stdout: "", stderr: `passthrough: no journal entry ${hex(99)}\n` });
  });

  it("lists every principal's latest entries newest first, as a table", async () => {
    const result = await cli(["journal", "list", "--config", config]);
    expect(result).toMatchObject({ code: 0, stderr: "" });
    const [header, ...rows] = result.stdout.trimEnd().split("\n");
    expect(header.split(/\s+/)).toEqual(["TIME", "KEY", "PRINCIPAL", "PROVIDER", "PROTOCOL", "STATUS", "DURATION"]);
    expect(rows.map((row) => row.split(/\s+/)[1])).toEqual(newestFirst(entries));
    expect(rows[0].split(/\s+/)).toEqual(["2030-01-01T00:00:05.000Z", hex(5), "key-?[31m", "openai", "rest", "200", "ok", "13ms"]);
    expect(rows[1].split(/\s+/)).toEqual(["2030-01-01T00:00:04.000Z", hex(4), "key-a", "local", "rest", "200", "ok", "1234ms"]);
    expect(rows[2].split(/\s+/)).toEqual(["2030-01-01T00:00:03.000Z", hex(3), "anonymous", "-", "rest", "400", "invalid_argument", "13ms"]);
    expect(result.stdout).not.toContain("\u001b");
  });

  it("takes --limit, --provider (normalized) and --principal; --json prints one entry a line", async () => {
    const limited = await cli(["journal", "list", "--limit", "2", "--json", "--config", config]);
    expect(limited).toMatchObject({ code: 0, stderr: "" });
    const lines = limited.stdout.trimEnd().split("\n").map((line) => JSON.parse(line) as { key: string });
    expect(lines.map((line) => line.key)).toEqual(newestFirst(entries).slice(0, 2));
    const filtered = await cli(["journal", "list", "--provider", "OpenAI", "--principal", "key-a", "--json", "--config", config]);
    expect(filtered.stdout.trimEnd().split("\n").map((line) => (JSON.parse(line) as { key: string }).key)).toEqual([hex(1)]);
    const none = await cli(["journal", "list", "--principal", "nobody", "--config", config]);
    expect(none).toMatchObject({ code: 0, stderr: "no journal entries\n" });
    expect(none.stdout).toMatch(/^TIME\s+KEY\s+PRINCIPAL\s+PROVIDER\s+PROTOCOL\s+STATUS\s+DURATION\n$/);
  });

  it("reads past the store's page size when --limit asks for more", async () => {
    const many = Array.from({ length: 1203 }, (_, i) => entry(1000 + i, { time: at(i), principal: `key-${i % 3}` }));
    const manyConfig = await storeWith(backend, "many", many);
    const result = await cli(["journal", "list", "--limit", "1202", "--json", "--config", manyConfig]);
    expect(result.code).toBe(0);
    const keys = result.stdout.trimEnd().split("\n").map((line) => (JSON.parse(line) as { key: string }).key);
    expect(keys).toEqual(newestFirst(many).slice(0, 1202));
  });
});

describe("passthrough journal", () => {
  it("opens the store of DATABASE_URL without a config file", async () => {
    const database = sqlite.database("by-env");
    const store = await openStore(database.url);
    await store.writeJournal([entry(7)]);
    await store.close();
    const result = await cli(["journal", "show", hex(7)], { DATABASE_URL: database.url });
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ key: hex(7) });
  });

  it.each([
    { name: "no subcommand", args: [], says: "Usage: passthrough journal" },
    { name: "an unknown subcommand", args: ["tail"], says: 'unknown command "journal tail"' },
    { name: "show without a key", args: ["show"], says: "one journal key" },
    { name: "a malformed key", args: ["show", "ABC"], says: "64 lowercase hex" },
    { name: "a zero --limit", args: ["list", "--limit", "0"], says: "--limit" },
    { name: "a bad --limit", args: ["list", "--limit", "ten"], says: "--limit" },
    { name: "an empty --provider", args: ["list", "--provider", " "], says: "--provider" },
    { name: "a whole key as --principal", args: ["list", "--principal", `ptk_abcdefghijklmnop_${"A".repeat(43)}`], says: "not the key itself" },
    { name: "an unknown option", args: ["list", "--colour"], says: "--colour" },
  ])("refuses $name with exit code 2", async ({ args, says }) => {
    const result = await cli(["journal", ...args]);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain(says);
    expect(result.stderr).not.toContain("A".repeat(43));
  });
});
