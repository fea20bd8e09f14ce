import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { setImmediate as nextTurn } from "node:timers/promises";
import { ConnectError } from "@connectrpc/connect";
import Database from "better-sqlite3";
import { fromJournalRow, JOURNAL_COLUMNS, journalValues, type JournalRow } from "./journal-row.js";
import { clampPageSize, decodePageToken, journalPage } from "./journal-page.js";
import { migrateSqlite } from "./migrations/sqlite.js";
import {
  keyAlreadyExists,
  storeUnavailable,
  type ApiKey,
  type ApiKeySummary,
  type JournalEntry,
  type Store,
  type StoreSubject,
} from "./store.js";

export interface SqliteStoreOptions {
  /** The database file, created with its folder when missing; `:memory:` for a private in-memory database. */
  path: string;
  /** How long a write waits for another connection's lock (a CLI beside a running server). Default 5 s. */
  busyTimeoutMs?: number;
}

/**
 * The embedded store: one better-sqlite3 connection in WAL mode, so readers never wait for the
 * writer and several processes (the server, the CLI) share one file. Calls are synchronous
 * underneath; retention yields to the event loop between its batches.
 */
export async function openSqliteStore(options: SqliteStoreOptions): Promise<Store> {
  let db: Database.Database | undefined;
  try {
    if (options.path !== ":memory:") mkdirSync(dirname(options.path), { recursive: true });
    db = new Database(options.path, { timeout: options.busyTimeoutMs ?? 5000 });
    // Journal rows carry bodies of a kilobyte and more: 16 KiB pages take several per page write
    // (a new database only: one that exists keeps its page size).
    db.pragma("page_size = 16384");
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = NORMAL");
    migrateSqlite(db);
  } catch (error) {
    db?.close();
    throw sqliteFailure(error, "store");
  }
  return sqliteStore(db);
}

/** The one place SQLite's failures become the contract's errors. */
function sqliteFailure(error: unknown, subject: StoreSubject): ConnectError {
  if (error instanceof ConnectError) return error;
  if ((error as { code?: string }).code === "SQLITE_CONSTRAINT_PRIMARYKEY" && subject === "key store") return keyAlreadyExists(error);
  return storeUnavailable(subject, error);
}

const SUMMARY_COLUMNS = `id, name, allowed_providers, requests_per_minute, tokens_per_minute, admin, created_at,
  expires_at, revoked_at, last_used_at, previous_valid_until, updated_at, version`;
const KEY_COLUMNS = `${SUMMARY_COLUMNS}, digest, previous_digest`;

function sqliteStore(db: Database.Database): Store {
  const statement = (sql: string) => db.prepare(sql);
  const tick = statement("UPDATE key_clock SET version = version + 1 WHERE id = 1 RETURNING version").pluck();
  const selectKey = statement(`SELECT ${KEY_COLUMNS} FROM api_keys WHERE id = ?`);
  const insertKey = statement(`INSERT INTO api_keys (id, digest, name, allowed_providers, requests_per_minute, tokens_per_minute,
    admin, created_at, expires_at, updated_at, version)
    VALUES (@id, @digest, @name, @allowedProviders, @rpm, @tpm, @admin, @createdAt, @expiresAt, @createdAt, @version)`);
  const revoke = statement("UPDATE api_keys SET revoked_at = ?, updated_at = ?, version = ? WHERE id = ? AND revoked_at IS NULL");
  const rotate = statement(`UPDATE api_keys SET previous_digest = digest, previous_valid_until = @until, digest = @digest,
    updated_at = @at, version = @version WHERE id = @id AND revoked_at IS NULL`);
  const touch = statement("UPDATE api_keys SET last_used_at = @time WHERE id = @id AND (last_used_at IS NULL OR last_used_at < @time)");
  const insertEntry = statement(`INSERT INTO journal (${JOURNAL_COLUMNS.join(", ")})
    VALUES (${JOURNAL_COLUMNS.map(() => "?").join(", ")}) ON CONFLICT (key) DO NOTHING`);
  const listKeys = statement(`SELECT ${SUMMARY_COLUMNS} FROM api_keys ORDER BY created_at, id`);
  const countKeys = statement("SELECT count(*) FROM api_keys").pluck();
  const changedKeys = statement(`SELECT ${KEY_COLUMNS} FROM api_keys WHERE version > ? ORDER BY version LIMIT ?`);
  const selectEntry = statement("SELECT * FROM journal WHERE key = ?");
  const deleteBatch = statement("DELETE FROM journal WHERE key IN (SELECT key FROM journal WHERE time < ? ORDER BY time LIMIT ?)");
  const listStatements = new Map<string, Database.Statement>();

  /** Runs one operation, mapping any failure; a closed database fails like an unreachable one. */
  const guard = async <T>(subject: StoreSubject, operation: () => T): Promise<T> => {
    try {
      if (!db.open) throw new Error("the SQLite database is closed");
      return operation();
    } catch (error) {
      throw sqliteFailure(error, subject);
    }
  };
  const write = <A extends unknown[], T>(operation: (...args: A) => T) => db.transaction(operation).immediate;
  const findKey = (id: string) => toKey(selectKey.get(id) as KeyRow | undefined);

  const createKey = write((key: Parameters<Store["createKey"]>[0]) => {
    insertKey.run({
      id: key.id,
      digest: key.digest,
      name: key.name,
      allowedProviders: key.allowedProviders ? JSON.stringify(key.allowedProviders) : null,
      rpm: key.requestsPerMinute ?? null,
      tpm: key.tokensPerMinute ?? null,
      admin: key.admin ? 1 : 0,
      createdAt: (key.createdAt ?? new Date()).getTime(),
      expiresAt: key.expiresAt?.getTime() ?? null,
      version: tick.get(),
    });
    return findKey(key.id) as ApiKey;
  });
  const revokeKey = write((id: string, at: Date): boolean => {
    const row = selectKey.get(id) as KeyRow | undefined;
    if (row === undefined) return false;
    if (row.revoked_at === null) revoke.run(at.getTime(), at.getTime(), tick.get(), id);
    return true;
  });
  const rotateKey = write((id: string, rotation: Parameters<Store["rotateKey"]>[1]) => {
    const row = selectKey.get(id) as KeyRow | undefined;
    if (row === undefined || row.revoked_at !== null) return undefined;
    const at = (rotation.at ?? new Date()).getTime();
    rotate.run({ id, digest: rotation.digest, until: rotation.previousValidUntil.getTime(), at, version: tick.get() });
    return findKey(id);
  });
  const touchKeys = write((lastUsed: ReadonlyMap<string, Date>) => {
    for (const [id, time] of lastUsed) touch.run({ id, time: time.getTime() });
  });
  const writeJournal = write((entries: readonly JournalEntry[]): number => {
    let written = 0;
    for (const entry of entries) written += insertEntry.run(journalValues(entry, (time) => time.getTime())).changes;
    return written;
  });

  const listStatement = (byPrincipal: boolean, filtered: boolean, paged: boolean): Database.Statement => {
    const variant = `${byPrincipal}:${filtered}:${paged}`;
    let found = listStatements.get(variant);
    if (found === undefined) {
      const where = [byPrincipal ? "principal = @principal" : "", filtered ? "provider = @provider" : "", paged ? "(time, key) < (@time, @key)" : ""];
      const conditions = where.filter(Boolean);
      const sql = `SELECT * FROM journal ${conditions.length > 0 ? `WHERE ${conditions.join(" AND ")}` : ""}
        ORDER BY time DESC, key DESC LIMIT @limit`;
      listStatements.set(variant, (found = statement(sql)));
    }
    return found;
  };

  return {
    createKey: (key) => guard("key store", () => createKey(key)),
    getKey: (id) => guard("key store", () => findKey(id)),
    listKeys: () => guard("key store", () => (listKeys.all() as KeyRow[]).map(toSummary)),
    revokeKey: (id, at = new Date()) => guard("key store", () => revokeKey(id, at)),
    rotateKey: (id, rotation) => guard("key store", () => rotateKey(id, rotation)),
    touchKeys: (lastUsed) => guard("key store", () => (lastUsed.size === 0 ? undefined : touchKeys(lastUsed))),
    countKeys: () => guard("key store", () => countKeys.get() as number),
    keyChangesSince: (version, limit = 1000) =>
      guard("key store", () => {
        const keys = (changedKeys.all(version, limit) as KeyRow[]).map((row) => toKey(row) as ApiKey);
        return { version: keys.at(-1)?.version ?? version, keys };
      }),

    writeJournal: (entries) => guard("journal", () => (entries.length === 0 ? 0 : writeJournal(entries))),
    getJournalEntry: (key) =>
      guard("journal", () => fromRow(selectEntry.get(key) as JournalRow | undefined)),
    listJournal: (query) =>
      guard("journal", () => {
        const position = query.pageToken ? decodePageToken(query.pageToken, query.provider) : undefined;
        const pageSize = clampPageSize(query.pageSize);
        const rows = listStatement(query.principal !== undefined, query.provider !== undefined, position !== undefined).all({
          ...(query.principal !== undefined && { principal: query.principal }),
          ...(query.provider !== undefined && { provider: query.provider }),
          ...(position && { time: position.time, key: position.key }),
          limit: pageSize + 1,
        }) as JournalRow[];
        return journalPage(rows.map(fromJournalRow), pageSize, query.provider);
      }),
    deleteJournalBefore: async (time, { batchSize = 1000 } = {}) => {
      let deleted = 0;
      for (;;) {
        const changes = await guard("journal", () => deleteBatch.run(time.getTime(), batchSize).changes);
        deleted += changes;
        if (changes < batchSize) return deleted;
        await nextTurn();
      }
    },

    ping: () => guard("store", () => void statement("SELECT 1").get()),
    close: async () => {
      if (db.open) db.close();
    },
  };
}

interface KeyRow {
  id: string;
  name: string;
  allowed_providers: string | null;
  requests_per_minute: number | null;
  tokens_per_minute: number | null;
  admin: number;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
  last_used_at: number | null;
  previous_valid_until: number | null;
  updated_at: number;
  version: number;
  digest?: string;
  previous_digest?: string | null;
}

const date = (ms: number | null) => (ms === null ? null : new Date(ms));

function toSummary(row: KeyRow): ApiKeySummary {
  return {
    id: row.id,
    name: row.name,
    allowedProviders: row.allowed_providers === null ? null : (JSON.parse(row.allowed_providers) as string[]),
    requestsPerMinute: row.requests_per_minute,
    tokensPerMinute: row.tokens_per_minute,
    admin: row.admin === 1,
    createdAt: new Date(row.created_at),
    expiresAt: date(row.expires_at),
    revokedAt: date(row.revoked_at),
    lastUsedAt: date(row.last_used_at),
    previousValidUntil: date(row.previous_valid_until),
    updatedAt: new Date(row.updated_at),
    version: row.version,
  };
}

function toKey(row: KeyRow | undefined): ApiKey | undefined {
  if (row === undefined) return undefined;
  return { ...toSummary(row), digest: row.digest as string, previousDigest: row.previous_digest ?? null };
}

const fromRow = (row: JournalRow | undefined) => (row === undefined ? undefined : fromJournalRow(row));
