import type { Database } from "better-sqlite3";
import { latestVersion, schemaTooNew, type Migration } from "./migration.js";

/**
 * SQLite's schema, in order. Times are epoch milliseconds; `key_clock` is the one row whose
 * counter gives every key change its version. Never edit a step once released: add one.
 */
export const sqliteMigrations: readonly Migration[] = [
  {
    version: 1,
    name: "api keys",
    sql: `
      CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        digest TEXT NOT NULL,
        previous_digest TEXT,
        previous_valid_until INTEGER,
        name TEXT NOT NULL,
        allowed_providers TEXT,
        requests_per_minute INTEGER,
        tokens_per_minute INTEGER,
        admin INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        expires_at INTEGER,
        revoked_at INTEGER,
        last_used_at INTEGER,
        updated_at INTEGER NOT NULL,
        version INTEGER NOT NULL
      ) STRICT;
      CREATE INDEX api_keys_version ON api_keys (version);
      CREATE TABLE key_clock (id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL) STRICT;
      INSERT INTO key_clock (id, version) VALUES (1, 0);`,
  },
  {
    version: 2,
    name: "journal",
    sql: `
      CREATE TABLE journal (
        key TEXT PRIMARY KEY,
        time INTEGER NOT NULL,
        principal TEXT NOT NULL,
        provider TEXT,
        protocol TEXT NOT NULL,
        request_body TEXT,
        response_body TEXT,
        status INTEGER NOT NULL,
        grpc_code INTEGER NOT NULL,
        upstream_status INTEGER,
        duration_ms REAL NOT NULL,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        total_tokens INTEGER,
        error TEXT
      ) STRICT;
      CREATE INDEX journal_principal_time ON journal (principal, time DESC, key DESC);
      CREATE INDEX journal_principal_provider_time ON journal (principal, provider, time DESC, key DESC);
      CREATE INDEX journal_time ON journal (time);`,
  },
];

const LATEST = latestVersion(sqliteMigrations);

/**
 * Brings the database to the latest schema. The steps run under `BEGIN IMMEDIATE`, SQLite's
 * write lock, so two processes opening a fresh file at once apply each step once (the second
 * waits out the busy timeout, then finds them applied). An up-to-date database takes no lock.
 */
export function migrateSqlite(db: Database): void {
  if (appliedVersion(db) === LATEST) return;
  db.exec("BEGIN IMMEDIATE");
  try {
    db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL) STRICT`);
    const applied = appliedVersion(db);
    if (applied > LATEST) throw schemaTooNew(applied, LATEST);
    const record = db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)");
    for (const migration of sqliteMigrations.slice(applied)) {
      db.exec(migration.sql);
      record.run(migration.version, migration.name, Date.now());
    }
    db.exec("COMMIT");
  } catch (error) {
    if (db.inTransaction) db.exec("ROLLBACK");
    throw error;
  }
}

function appliedVersion(db: Database): number {
  const table = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").get();
  if (table === undefined) return 0;
  return (db.prepare("SELECT coalesce(max(version), 0) AS version FROM schema_migrations").get() as { version: number }).version;
}
