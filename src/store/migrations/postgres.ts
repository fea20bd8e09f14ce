import type { PoolClient } from "pg";
import { latestVersion, schemaTooNew, type Migration } from "./migration.js";

/**
 * PostgreSQL's schema, in order; each step's SQL is made for the quoted schema the store uses.
 * `key_clock` is the one row whose counter gives every key change its version: its row lock,
 * held to commit, makes versions commit in order. Never edit a step once released: add one.
 */
export const postgresMigrations: readonly Migration<(schema: string) => string>[] = [
  {
    version: 1,
    name: "api keys",
    sql: (s) => `
      CREATE TABLE ${s}.api_keys (
        id text PRIMARY KEY,
        digest text NOT NULL,
        previous_digest text,
        previous_valid_until timestamptz,
        name text NOT NULL,
        allowed_providers text[],
        requests_per_minute integer,
        tokens_per_minute integer,
        admin boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL,
        expires_at timestamptz,
        revoked_at timestamptz,
        last_used_at timestamptz,
        updated_at timestamptz NOT NULL,
        version bigint NOT NULL
      );
      CREATE INDEX api_keys_version ON ${s}.api_keys (version);
      CREATE TABLE ${s}.key_clock (id boolean PRIMARY KEY DEFAULT true CHECK (id), version bigint NOT NULL);
      INSERT INTO ${s}.key_clock (id, version) VALUES (true, 0);`,
  },
  {
    version: 2,
    name: "journal",
    sql: (s) => `
      CREATE TABLE ${s}.journal (
        key text PRIMARY KEY,
        time timestamptz NOT NULL,
        principal text NOT NULL,
        provider text,
        protocol text NOT NULL,
        request_body text,
        response_body text,
        status integer NOT NULL,
        grpc_code integer NOT NULL,
        upstream_status integer,
        duration_ms double precision NOT NULL,
        prompt_tokens integer,
        completion_tokens integer,
        total_tokens integer,
        error text
      );
      CREATE INDEX journal_principal_time ON ${s}.journal (principal, time DESC, key DESC);
      CREATE INDEX journal_principal_provider_time ON ${s}.journal (principal, provider, time DESC, key DESC);
      CREATE INDEX journal_time ON ${s}.journal (time);`,
  },
];

const LATEST = latestVersion(postgresMigrations);

/**
 * Brings the schema to the latest version. The steps run in one transaction holding
 * `pg_advisory_xact_lock` for this schema, so instances starting together apply each step
 * once; the schema is created when missing. An up-to-date schema takes no lock.
 */
export async function migratePostgres(client: PoolClient, schema: string, quoted: string): Promise<void> {
  if ((await appliedVersion(client, quoted)) === LATEST) return;
  await client.query("BEGIN");
  try {
    await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`passthrough migrations ${schema}`]);
    // Checked first: CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege even when the schema exists.
    const exists = await client.query("SELECT 1 FROM pg_namespace WHERE nspname = $1", [schema]);
    if (exists.rowCount === 0) await client.query(`CREATE SCHEMA ${quoted}`);
    await client.query(`CREATE TABLE IF NOT EXISTS ${quoted}.schema_migrations (
      version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
    const applied = await appliedVersion(client, quoted);
    if (applied > LATEST) throw schemaTooNew(applied, LATEST);
    for (const migration of postgresMigrations.slice(applied)) {
      await client.query(migration.sql(quoted));
      await client.query(`INSERT INTO ${quoted}.schema_migrations (version, name) VALUES ($1, $2)`, [migration.version, migration.name]);
    }
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw error;
  }
}

async function appliedVersion(client: PoolClient, quoted: string): Promise<number> {
  const table = await client.query<{ found: string | null }>("SELECT to_regclass($1) AS found", [`${quoted}.schema_migrations`]);
  if (table.rows[0].found === null) return 0;
  const result = await client.query<{ version: number }>(`SELECT coalesce(max(version), 0) AS version FROM ${quoted}.schema_migrations`);
  return result.rows[0].version;
}
