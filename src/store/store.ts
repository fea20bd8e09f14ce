import { Code, ConnectError } from "@connectrpc/connect";

/**
 * The storage contract: API keys (SPEC section 5) and the journal (section 7) in one database.
 * Implementations sit beside this file (sqlite.ts, postgres.ts) and pass the one shared
 * contract test (test/store/contract.ts). Writes are batched, reads paged; every failure of the
 * database crosses this contract as a ConnectError (see storeUnavailable), never a driver error.
 */
export interface Store {
  /** Adds a key; a key with the same id already there is ALREADY_EXISTS. */
  createKey(key: NewApiKey): Promise<ApiKey>;
  /** The key with its digests, for verification; undefined when there is none. */
  getKey(id: string): Promise<ApiKey | undefined>;
  /** Every key, oldest first, without its digests. */
  listKeys(): Promise<ApiKeySummary[]>;
  /** Marks the key revoked (once: revoking again keeps the first time); false when there is no such key. */
  revokeKey(id: string, at?: Date): Promise<boolean>;
  /**
   * Gives an active key a new digest in one atomic write: the current digest becomes the
   * previous one, valid until `previousValidUntil`, replacing any previous digest still pending.
   * Undefined when there is no such key or it is revoked.
   */
  rotateKey(id: string, rotation: KeyRotation): Promise<ApiKey | undefined>;
  /** Records last-used times in one write, each only if newer than the stored one; unknown ids are ignored. */
  touchKeys(lastUsed: ReadonlyMap<string, Date>): Promise<void>;
  countKeys(): Promise<number>;
  /**
   * Keys changed (created, revoked, rotated) since `version`, in version order, so that every
   * instance's cache can revalidate with one indexed query. Last-used times are not changes.
   */
  keyChangesSince(version: number, limit?: number): Promise<KeyChanges>;

  /** Writes a batch in one transaction; an entry whose key is already stored is skipped. Returns how many were new. */
  writeJournal(entries: readonly JournalEntry[]): Promise<number>;
  getJournalEntry(key: string): Promise<JournalEntry | undefined>;
  /** Entries newest first (one principal's, or every one's), paged on (time, key); a bad page token is INVALID_ARGUMENT. */
  listJournal(query: JournalQuery): Promise<JournalPage>;
  /** Deletes entries older than `time`, in transactions of `batchSize` (default 1000) rows; returns how many. */
  deleteJournalBefore(time: Date, options?: { batchSize?: number }): Promise<number>;

  /** Resolves when the database answers (readiness). */
  ping(): Promise<void>;
  /** Releases the database; safe to call twice. Every later call fails UNAVAILABLE. */
  close(): Promise<void>;
}

/** A key as listed: everything but its digests. */
export interface ApiKeySummary {
  /** The lookup id, the middle part of `ptk_<id>_<secret>`. */
  readonly id: string;
  readonly name: string;
  /** Normalized provider names this key may call; null: every provider. */
  readonly allowedProviders: readonly string[] | null;
  /** Per-key limits overriding the configured ones; null: the configured limit. */
  readonly requestsPerMinute: number | null;
  readonly tokensPerMinute: number | null;
  /** May administer keys through the API (when that exists). */
  readonly admin: boolean;
  readonly createdAt: Date;
  readonly expiresAt: Date | null;
  readonly revokedAt: Date | null;
  readonly lastUsedAt: Date | null;
  /** Until when the secret before the last rotation is still accepted; null when none is. */
  readonly previousValidUntil: Date | null;
  /** When the key last changed (creation, rotation, revocation). */
  readonly updatedAt: Date;
  /** Store-wide, increasing with every change; a committed change never gets a smaller version than one seen before. */
  readonly version: number;
}

/** A key as stored: the summary and the SHA-256 digests (hex) of its secrets. */
export interface ApiKey extends ApiKeySummary {
  readonly digest: string;
  /** The digest of the secret before the last rotation; accepted until `previousValidUntil`. */
  readonly previousDigest: string | null;
}

export interface NewApiKey {
  readonly id: string;
  readonly digest: string;
  readonly name: string;
  readonly allowedProviders?: readonly string[] | null;
  readonly requestsPerMinute?: number | null;
  readonly tokensPerMinute?: number | null;
  readonly admin?: boolean;
  /** Default: now. */
  readonly createdAt?: Date;
  readonly expiresAt?: Date | null;
}

export interface KeyRotation {
  /** The digest of the new secret. */
  readonly digest: string;
  /** Until when the current secret stays valid; now or earlier ends it at once. */
  readonly previousValidUntil: Date;
  /** Default: now. */
  readonly at?: Date;
}

export interface KeyChanges {
  /** The highest version returned, or the `version` asked about when nothing changed. */
  readonly version: number;
  readonly keys: ApiKey[];
}

/** One call as the journal keeps it (SPEC section 7): plain data, no secret, no authorization header. */
export interface JournalEntry {
  /** 64 hex characters; the entry's identity, so a replayed entry is written once. */
  readonly key: string;
  /** When the call started. */
  readonly time: Date;
  /** Who made the call: a key id or a token subject, never a secret. */
  readonly principal: string;
  /** The normalized provider name; null when the call failed before one was known. */
  readonly provider: string | null;
  /** `grpc`, `grpc-web`, `connect` or `rest`. */
  readonly protocol: string;
  /** The request body as JSON text (as received when it was not valid JSON); null when none was read. */
  readonly requestBody: string | null;
  /** The answer as JSON text; for a stream, the assembled result. */
  readonly responseBody: string | null;
  /** The REST status the call was (or would have been) answered with. */
  readonly status: number;
  /** The gRPC code, 0 for OK. */
  readonly grpcCode: number;
  /** The provider's HTTP status; null when it was not reached. */
  readonly upstreamStatus: number | null;
  readonly durationMs: number;
  readonly promptTokens: number | null;
  readonly completionTokens: number | null;
  readonly totalTokens: number | null;
  /** The error's description when the call failed. */
  readonly error: string | null;
}

export interface JournalQuery {
  /** Only this principal's entries; undefined: every principal's (the CLI). */
  readonly principal?: string;
  /** Clamped to 1…MAX_JOURNAL_PAGE_SIZE. */
  readonly pageSize: number;
  /** `nextPageToken` of the previous page, asked with the same filter. */
  readonly pageToken?: string;
  readonly provider?: string;
}

export interface JournalPage {
  readonly entries: JournalEntry[];
  /** Absent on the last page. */
  readonly nextPageToken?: string;
}

export const MAX_JOURNAL_PAGE_SIZE = 1000;

/** What part of the store failed, for the error's description. */
export type StoreSubject = "key store" | "journal" | "store";

/**
 * The one error the database's failures become: UNAVAILABLE with a plain description and the
 * driver's error as `cause`, so no SQL, path or connection string reaches a caller.
 */
export function storeUnavailable(subject: StoreSubject, cause: unknown): ConnectError {
  return new ConnectError(`the ${subject} is unavailable`, Code.Unavailable, undefined, undefined, cause);
}

/** A key id that is already stored: the caller's conflict, not the database's failure. */
export function keyAlreadyExists(cause: unknown): ConnectError {
  return new ConnectError("a key with this id already exists", Code.AlreadyExists, undefined, undefined, cause);
}
