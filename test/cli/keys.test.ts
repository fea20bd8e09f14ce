import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import pg from "pg";
import { afterAll, describe, expect, it, vi } from "vitest";
import { API_KEY_PATTERN, digestSecret, keyDigests, matchDigest, parseApiKey } from "../../src/auth/api-keys.js";
import { openStore } from "../../src/store/open.js";
import { closedPort, postgresUrl, probePostgres } from "../store/postgres-support.js";
import { entry } from "../store/contract.js";

// Each test spawns the real CLI several times, and a process start is slow on a busy machine.
vi.setConfig({ testTimeout: 90_000 });

const bin = join(import.meta.dirname, "../../bin/passthrough.js");
const dir = mkdtempSync(join(tmpdir(), "passthrough-keys-"));
const run = `passthrough_cli_${randomBytes(4).toString("hex")}`;

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

/** The key printed alone on standard output, after checking that nothing else was. */
function printedKey(result: Result): string {
  expect(result.stderr).not.toMatch(/\n\s+at /);
  expect(result.code).toBe(0);
  expect(result.stdout).toMatch(/^ptk_[^\n]+\n$/);
  const key = result.stdout.trim();
  expect(key).toMatch(API_KEY_PATTERN);
  expect(result.stderr).not.toContain(key.slice(21));
  return key;
}

const parsed = (key: string) => {
  const result = parseApiKey(key);
  if (!result.ok) throw new Error("not a key");
  return { id: result.id, secret: result.secret.reveal(), digest: digestSecret(result.secret) };
};

/** Where a suite's databases live, and how to read every byte or row of one back. */
interface Backend {
  name: string;
  /** A config file for a fresh, empty database. */
  newConfig(label: string): string;
  /** Everything the database holds, as text. */
  dump(config: string): Promise<string>;
  database(config: string): { url: string; schema?: string };
}

let configs = 0;
const writeConfig = (yaml: string) => {
  const file = join(dir, `config-${++configs}.yaml`);
  writeFileSync(file, yaml);
  return file;
};
const databases = new Map<string, { url: string; schema?: string }>();

const sqlite: Backend = {
  name: "SQLite",
  newConfig(label) {
    const url = `sqlite:./data/${label}.db`;
    const file = writeConfig(`database: { url: "${url}" }\n`);
    databases.set(file, { url: `sqlite:${join(dir, "data", `${label}.db`)}` });
    return file;
  },
  async dump(config) {
    const path = databases.get(config)!.url.slice("sqlite:".length);
    return ["", "-wal", "-shm"].map((suffix) => (existsSync(path + suffix) ? readFileSync(path + suffix).toString("latin1") : "")).join("");
  },
  database: (config) => databases.get(config)!,
};

const postgres: Backend = {
  name: "PostgreSQL",
  newConfig(label) {
    const schema = `${run}_${label.replace(/\W/g, "_")}`;
    const file = writeConfig(`database: { url: "${postgresUrl}", schema: ${schema} }\n`);
    databases.set(file, { url: postgresUrl, schema });
    return file;
  },
  async dump(config) {
    const { schema } = databases.get(config)!;
    const client = new pg.Client(postgresUrl);
    await client.connect();
    try {
      const tables = await client.query<{ name: string }>("SELECT table_name AS name FROM information_schema.tables WHERE table_schema = $1", [schema]);
      const rows = await Promise.all(tables.rows.map(({ name }) => client.query(`SELECT t::text AS row FROM "${schema}"."${name}" t`)));
      return rows.flatMap((result) => result.rows.map((row: { row: string }) => row.row)).join("\n");
    } finally {
      await client.end();
    }
  },
  database: (config) => databases.get(config)!,
};

const unreachable = await probePostgres();
const backends = [sqlite, ...(unreachable === undefined || process.env.CI === "true" ? [postgres] : [])];
if (unreachable !== undefined && process.env.CI !== "true") console.warn(`keys CLI on PostgreSQL skipped: ${postgresUrl} unreachable: ${unreachable}`);

afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  if (unreachable !== undefined) return;
  const client = new pg.Client(postgresUrl);
  await client.connect();
  const { rows } = await client.query<{ name: string }>("SELECT nspname AS name FROM pg_namespace WHERE nspname LIKE $1", [`${run}%`]);
  for (const { name } of rows) await client.query(`DROP SCHEMA "${name}" CASCADE`);
  await client.end();
});

describe.each(backends)("passthrough keys on $name", (backend) => {
  it("creates a key on a fresh store, prints it alone, and stores only its digest", async () => {
    if (backend === postgres && unreachable !== undefined) throw new Error(`PostgreSQL is unreachable in CI: ${unreachable}`);
    const config = backend.newConfig("fresh");
    const key = printedKey(await cli(["keys", "create", "--name", "ci", "--config", config]));
    const { id, secret, digest } = parsed(key);

    const stored = await backend.dump(config);
    expect(stored).toContain(digest);
    expect(stored).not.toContain(secret);
    expect(stored).not.toContain(key);

    const table = await cli(["keys", "list", "--config", config]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(new RegExp(`^ID\\s+NAME\\s+STATUS.*\\n${id}\\s+ci\\s+active\\s+all\\s`));
    const json = await cli(["keys", "list", "--json", "--config", config]);
    const listed = JSON.parse(json.stdout) as Array<Record<string, unknown>>;
    expect(listed).toEqual([expect.objectContaining({ id, name: "ci", status: "active", allowedProviders: null, admin: false })]);
    for (const output of [table.stdout, table.stderr, json.stdout, json.stderr]) {
      expect(output).not.toContain(secret);
      expect(output).not.toContain(digest);
    }
  });

  it("takes a key's providers, limits, expiry and admin flag", async () => {
    const config = backend.newConfig("options");
    const before = Date.now();
    const key = printedKey(
      await cli(["keys", "create", "--config", config, "--name", "batch job", "--providers", "OpenAI, local-llm", "--expires-in", "30d", "--rpm", "60", "--tpm", "1000", "--admin"]),
    );
    const [listed] = JSON.parse((await cli(["keys", "list", "--json", "--config", config])).stdout);
    expect(listed).toMatchObject({ id: parsed(key).id, name: "batch job", allowedProviders: ["openai", "local_llm"], requestsPerMinute: 60, tokensPerMinute: 1000, admin: true });
    const expiresIn = Date.parse(listed.expiresAt) - before;
    expect(expiresIn).toBeGreaterThan(30 * 86_400_000 - 60_000);
    expect(expiresIn).toBeLessThanOrEqual(30 * 86_400_000 + 60_000);
  });

  it("rotates twice safely, then revokes, idempotently", async () => {
    const config = backend.newConfig("rotate");
    const first = parsed(printedKey(await cli(["keys", "create", "--name", "r", "--config", config])));
    const second = parsed(printedKey(await cli(["keys", "rotate", first.id, "--grace", "1h", "--config", config])));
    const rotated = await cli(["keys", "rotate", first.id, "--config", config]);
    const third = parsed(printedKey(rotated));
    expect([second.id, third.id]).toEqual([first.id, first.id]);
    expect(rotated.stderr).toMatch(/previous secret works until \S+Z/);

    const store = await openStore(backend.database(config).url, { schema: backend.database(config).schema });
    const key = (await store.getKey(first.id))!;
    await store.close();
    const now = new Date();
    expect(matchDigest(keyDigests(key), Buffer.from(third.digest, "hex"), now)).toBe("current");
    expect(matchDigest(keyDigests(key), Buffer.from(second.digest, "hex"), now)).toBe("previous");
    expect(matchDigest(keyDigests(key), Buffer.from(first.digest, "hex"), now)).toBeUndefined();
    expect(key.previousValidUntil!.getTime() - now.getTime()).toBeGreaterThan(23 * 3_600_000);

    const stored = await backend.dump(config);
    for (const secret of [first.secret, second.secret, third.secret]) expect(stored).not.toContain(secret);

    expect(await cli(["keys", "revoke", first.id, "--config", config])).toMatchObject({ code: 0, stdout: "" });
    const again = await cli(["keys", "revoke", first.id, "--config", config]);
    expect(again).toMatchObject({ code: 0, stdout: "" });
    expect(again.stderr).toContain("already revoked");
    const [listed] = JSON.parse((await cli(["keys", "list", "--json", "--config", config])).stdout);
    expect(listed.status).toBe("revoked");
    const refused = await cli(["keys", "rotate", first.id, "--config", config]);
    expect(refused).toMatchObject({ code: 1, stdout: "" });
    expect(refused.stderr).toContain("revoked");
  });

  it("applies migrations once when several commands open a fresh store at once", async () => {
    const config = backend.newConfig("race");
    const results = await Promise.all(Array.from({ length: 4 }, (_, i) => cli(["keys", "create", "--name", `n${i}`, "--config", config])));
    const ids = results.map((result) => parsed(printedKey(result)).id);
    const listed = JSON.parse((await cli(["keys", "list", "--json", "--config", config])).stdout) as Array<{ id: string }>;
    expect(listed.map((key) => key.id).sort()).toEqual(ids.sort());
  });

  it.each([
    ["revoke", "no key with ID"],
    ["rotate", "no key with ID"],
  ])("keys %s of an unknown ID fails with exit code 1", async (command, says) => {
    const result = await cli(["keys", command, "aaaaaaaaaaaaaaaa", "--config", backend.newConfig(`unknown-${command}`)]);
    expect(result).toMatchObject({ code: 1, stdout: "" });
    expect(result.stderr).toBe(`passthrough: ${says} aaaaaaaaaaaaaaaa\n`);
  });
});

describe("passthrough keys", () => {
  const key = "ptk_abcdefghijklmnop_" + "A".repeat(43);
  it.each([
    { name: "no subcommand", args: [], says: "Usage: passthrough keys" },
    { name: "an unknown subcommand", args: ["frobnicate"], says: 'unknown command "keys frobnicate"' },
    { name: "create without --name", args: ["create"], says: "--name is required" },
    { name: "a bad --expires-in", args: ["create", "--name", "x", "--expires-in", "3 weeks"], says: "--expires-in" },
    { name: "a zero --expires-in", args: ["create", "--name", "x", "--expires-in", "0s"], says: "--expires-in" },
    { name: "a bad --rpm", args: ["create", "--name", "x", "--rpm", "1.5"], says: "--rpm" },
    { name: "a bad --providers", args: ["create", "--name", "x", "--providers", "a,,b"], says: "--providers" },
    { name: "an unknown option", args: ["list", "--colour"], says: "--colour" },
    { name: "revoke without an ID", args: ["revoke"], says: "one key ID" },
    { name: "a malformed ID", args: ["revoke", "x/y"], says: "not a key ID" },
    { name: "a bad --grace", args: ["rotate", "aaaaaaaaaaaaaaaa", "--grace", "soon"], says: "--grace" },
    { name: "a whole key instead of its ID", args: ["revoke", key], says: "not the key itself" },
    { name: "a missing config file", args: ["list", "--config", "nope.yaml"], says: "nope.yaml" },
    { name: "an unsupported database.url", args: ["list"], env: { DATABASE_URL: "mysql://root:hunter2@db/x" }, says: "database.url" },
  ])("refuses $name with one line on stderr and exit code 2", async ({ args, env, says }) => {
    const result = await cli(["keys", ...args], env);
    expect(result.code).toBe(2);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain(says);
    if (args.length > 0) expect(result.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(result.stderr).not.toContain("hunter2");
    expect(result.stderr).not.toContain(key.slice(21));
  });

  it("fails with exit code 1, without the password, when the database cannot be reached", async () => {
    const result = await cli(["keys", "list"], { DATABASE_URL: `postgres://someone:hunter2@127.0.0.1:${await closedPort()}/test` });
    expect(result).toMatchObject({ code: 1, stdout: "" });
    expect(result.stderr).toMatch(/^passthrough: the store is unavailable \(.*ECONNREFUSED.*\)\n$/);
    expect(result.stderr).not.toContain("hunter2");
  });

  it("uses ./data/passthrough.db when nothing is configured", async () => {
    const result = await cli(["keys", "create", "--name", "default"]);
    printedKey(result);
    expect(existsSync(join(dir, "data", "passthrough.db"))).toBe(true);
  });

  it("works beside a running server: waits out its write lock, and shares the file while it writes", async () => {
    const config = sqlite.newConfig("beside-server");
    const { url } = sqlite.database(config);
    const server = await openStore(url);

    // The server holds SQLite's write lock for a while: the command waits for it (the busy timeout).
    const lock = new Database(url.slice("sqlite:".length));
    lock.exec("BEGIN IMMEDIATE");
    const released = new Promise((resolve) => setTimeout(resolve, 700)).then(() => lock.exec("COMMIT"));
    const started = Date.now();
    const created = await cli(["keys", "create", "--name", "while-serving", "--config", config]);
    await released;
    lock.close();
    const id = parsed(printedKey(created)).id;
    expect(Date.now() - started).toBeGreaterThanOrEqual(700);

    // The server writes journal batches while the command revokes.
    let failures = 0;
    let n = 0;
    const writes = setInterval(() => server.writeJournal([entry(++n)]).catch(() => failures++), 5);
    const revoked = await cli(["keys", "revoke", id, "--config", config]);
    clearInterval(writes);
    expect(revoked.code).toBe(0);
    expect(failures).toBe(0);
    expect(n).toBeGreaterThan(0);
    expect((await server.getKey(id))?.revokedAt).not.toBeNull();
    await server.close();
  });
});
