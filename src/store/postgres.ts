import { setImmediate as nextTurn } from "node:timers/promises";
import { ConnectError } from "@connectrpc/connect";
import pg from "pg";
import { fromJournalRow, JOURNAL_COLUMNS, journalValues, type JournalRow } from "./journal-row.js";
import { clampPageSize, decodePageToken, journalPage } from "./journal-page.js";
import { migratePostgres } from "./migrations/postgres.js";
import { keyAlreadyExists, storeUnavailable, type ApiKey, type ApiKeySummary, type Store, type StoreSubject } from "./store.js";

export interface PostgresStoreOptions {
  /** `postgres://user:password@host:port/database`; never echoed in an error. */
  url: string;
  /** The schema that holds the tables, created when missing. Default `public`. */
  schema?: string;
  /** Connections in the pool. Default 10. */
  maxConnections?: number;
  /** How long getting a connection may take before the call fails UNAVAILABLE. Default 5 s. */
  connectTimeoutMs?: number;
  /**
   * How long a query may wait for its answer before it fails UNAVAILABLE and its connection is
   * discarded, so that a server or network that stops answering cannot hold the pool. Default 30 s.
   */
  queryTimeoutMs?: number;
}

/** A plain identifier, so the schema can be quoted into SQL (identifiers cannot be parameters). */
const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/**
 * The store for several instances: a `pg` pool, parameterized queries only. Migrations run at
 * open; a database that cannot be reached fails the open with UNAVAILABLE.
 */
export async function openPostgresStore(options: PostgresStoreOptions): Promise<Store> {
  const schema = options.schema ?? "public";
  if (!SCHEMA_NAME.test(schema)) throw new Error(`schema "${schema}" is not a plain identifier`);
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.maxConnections ?? 10,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
    query_timeout: options.queryTimeoutMs ?? 30_000,
    application_name: "passthrough",
  });
  // An idle connection that breaks is reported here; the next query fails and is mapped then.
  pool.on("error", () => undefined);
  try {
    const client = await pool.connect();
    try {
      await migratePostgres(client, schema, `"${schema}"`);
    } finally {
      client.release();
    }
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw postgresFailure(error, "store");
  }
  return postgresStore(pool, `"${schema}"`);
}

/** The one place PostgreSQL's failures become the contract's errors. */
function postgresFailure(error: unknown, subject: StoreSubject): ConnectError {
  if (error instanceof ConnectError) return error;
  if ((error as { code?: string }).code === "23505" && subject === "key store") return keyAlreadyExists(error);
  return storeUnavailable(subject, error);
}

const SUMMARY_COLUMNS = `id, name, allowed_providers, requests_per_minute, tokens_per_minute, admin, created_at,
  expires_at, revoked_at, last_used_at, previous_valid_until, updated_at, version`;
const KEY_COLUMNS = `${SUMMARY_COLUMNS}, digest, previous_digest`;
const JOURNAL_TYPES = ["text", "timestamptz", "text", "text", "text", "text", "text", "int", "int", "int", "float8", "int", "int", "int", "text"];

function postgresStore(pool: pg.Pool, s: string): Store {
  let closed = false;
  const execute = async <Row extends pg.QueryResultRow>(subject: StoreSubject, sql: string, values: unknown[] = []) => {
    try {
      return await pool.query<Row>(sql, values);
    } catch (error) {
      throw postgresFailure(error, subject);
    }
  };
  const keyQuery = async (sql: string, values: unknown[]) => (await execute<KeyRow>("key store", sql, values)).rows.map(toKey);
  // Every key change takes the next version from key_clock first, so its row lock orders the commits.
  const tick = `WITH clock AS (UPDATE ${s}.key_clock SET version = version + 1 RETURNING version)`;

  return {
    createKey: async (key) => {
      const [created] = await keyQuery(
        `${tick} INSERT INTO ${s}.api_keys (id, digest, name, allowed_providers, requests_per_minute, tokens_per_minute,
          admin, created_at, expires_at, updated_at, version)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $8, (SELECT version FROM clock)) RETURNING ${KEY_COLUMNS}`,
        [key.id, key.digest, key.name, key.allowedProviders ?? null, key.requestsPerMinute ?? null, key.tokensPerMinute ?? null,
          key.admin ?? false, key.createdAt ?? new Date(), key.expiresAt ?? null],
      );
      return created;
    },
    getKey: async (id) => (await keyQuery(`SELECT ${KEY_COLUMNS} FROM ${s}.api_keys WHERE id = $1`, [id]))[0],
    listKeys: async () =>
      (await execute<KeyRow>("key store", `SELECT ${SUMMARY_COLUMNS} FROM ${s}.api_keys ORDER BY created_at, id`)).rows.map(toSummary),
    revokeKey: async (id, at = new Date()) => {
      const revoked = await execute("key store", `${tick} UPDATE ${s}.api_keys SET revoked_at = $2, updated_at = $2,
        version = (SELECT version FROM clock) WHERE id = $1 AND revoked_at IS NULL RETURNING id`, [id, at]);
      if (revoked.rowCount) return true;
      return Boolean((await execute("key store", `SELECT 1 FROM ${s}.api_keys WHERE id = $1`, [id])).rowCount);
    },
    rotateKey: async (id, rotation) => {
      // One statement: SET reads the row as it was, so the old digest moves to previous_digest atomically.
      const [rotated] = await keyQuery(
        `${tick} UPDATE ${s}.api_keys SET previous_digest = digest, previous_valid_until = $3, digest = $2,
          updated_at = $4, version = (SELECT version FROM clock)
        WHERE id = $1 AND revoked_at IS NULL RETURNING ${KEY_COLUMNS}`,
        [id, rotation.digest, rotation.previousValidUntil, rotation.at ?? new Date()],
      );
      return rotated;
    },
    touchKeys: async (lastUsed) => {
      if (lastUsed.size === 0) return;
      const ids = [...lastUsed.keys()];
      const times = ids.map((id) => (lastUsed.get(id) as Date).toISOString());
      // The rows are locked in id order first, so that two instances touching the same keys cannot deadlock.
      await execute("key store", `WITH used AS (SELECT * FROM unnest($1::text[], $2::timestamptz[]) AS used (id, time)),
        locked AS (SELECT k.id FROM ${s}.api_keys k JOIN used ON k.id = used.id
          WHERE k.last_used_at IS NULL OR k.last_used_at < used.time ORDER BY k.id FOR UPDATE OF k)
        UPDATE ${s}.api_keys k SET last_used_at = used.time FROM used
        WHERE k.id = used.id AND k.id IN (SELECT id FROM locked) AND (k.last_used_at IS NULL OR k.last_used_at < used.time)`,
        [ids, times]);
    },
    countKeys: async () => Number((await execute<{ n: string }>("key store", `SELECT count(*) AS n FROM ${s}.api_keys`)).rows[0].n),
    keyChangesSince: async (version, limit = 1000) => {
      const keys = await keyQuery(`SELECT ${KEY_COLUMNS} FROM ${s}.api_keys WHERE version > $1 ORDER BY version LIMIT $2`, [version, limit]);
      return { version: keys.at(-1)?.version ?? version, keys };
    },

    writeJournal: async (entries) => {
      if (entries.length === 0) return 0;
      // One statement, one array per column: a batch is one round trip and one transaction.
      const columns = JOURNAL_COLUMNS.map(() => [] as unknown[]);
      for (const entry of entries) journalValues(entry, (time) => time.toISOString()).forEach((value, i) => columns[i].push(value));
      const arrays = JOURNAL_TYPES.map((type, i) => `$${i + 1}::${type}[]`).join(", ");
      const written = await execute("journal", `INSERT INTO ${s}.journal (${JOURNAL_COLUMNS.join(", ")})
        SELECT * FROM unnest(${arrays}) ON CONFLICT (key) DO NOTHING`, columns);
      return written.rowCount ?? 0;
    },
    getJournalEntry: async (key) => {
      const [row] = (await execute<JournalRow>("journal", `SELECT * FROM ${s}.journal WHERE key = $1`, [key])).rows;
      return row === undefined ? undefined : fromJournalRow(row);
    },
    listJournal: async (query) => {
      const position = query.pageToken ? decodePageToken(query.pageToken, query.provider) : undefined;
      const pageSize = clampPageSize(query.pageSize);
      const values: unknown[] = [];
      const where: string[] = [];
      if (query.principal !== undefined) where.push(`principal = $${values.push(query.principal)}`);
      if (query.provider !== undefined) where.push(`provider = $${values.push(query.provider)}`);
      if (position) where.push(`(time, key) < ($${values.push(new Date(position.time))}, $${values.push(position.key)})`);
      const rows = await execute<JournalRow>("journal", `SELECT * FROM ${s}.journal ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""}
        ORDER BY time DESC, key DESC LIMIT $${values.push(pageSize + 1)}`, values);
      return journalPage(rows.rows.map(fromJournalRow), pageSize, query.provider);
    },
    deleteJournalBefore: async (time, { batchSize = 1000 } = {}) => {
      let deleted = 0;
      for (;;) {
        const batch = await execute("journal", `DELETE FROM ${s}.journal WHERE key IN
          (SELECT key FROM ${s}.journal WHERE time < $1 ORDER BY time LIMIT $2)`, [time, batchSize]);
        deleted += batch.rowCount ?? 0;
        if ((batch.rowCount ?? 0) < batchSize) return deleted;
        await nextTurn();
      }
    },

    ping: async () => void (await execute("store", "SELECT 1")),
    close: async () => {
      if (closed) return;
      closed = true;
      await pool.end();
    },
  };
}

interface KeyRow {
  id: string;
  name: string;
  allowed_providers: string[] | null;
  requests_per_minute: number | null;
  tokens_per_minute: number | null;
  admin: boolean;
  created_at: Date;
  expires_at: Date | null;
  revoked_at: Date | null;
  last_used_at: Date | null;
  previous_valid_until: Date | null;
  updated_at: Date;
  /** bigint arrives as a string. */
  version: string;
  digest?: string;
  previous_digest?: string | null;
}

function toSummary(row: KeyRow): ApiKeySummary {
  return {
    id: row.id,
    name: row.name,
    allowedProviders: row.allowed_providers,
    requestsPerMinute: row.requests_per_minute,
    tokensPerMinute: row.tokens_per_minute,
    admin: row.admin,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
    lastUsedAt: row.last_used_at,
    previousValidUntil: row.previous_valid_until,
    updatedAt: row.updated_at,
    version: Number(row.version),
  };
}

function toKey(row: KeyRow): ApiKey {
  return { ...toSummary(row), digest: row.digest as string, previousDigest: row.previous_digest ?? null };
}
