import { Code, ConnectError } from "@connectrpc/connect";
import { MAX_JOURNAL_PAGE_SIZE, type JournalEntry, type JournalPage } from "./store.js";

/**
 * The keyset position a journal page ends at: the last entry's (time, key). Pages are read with
 * `(time, key) < (position)` in `time DESC, key DESC` order, never OFFSET, so entries written
 * meanwhile neither repeat nor go missing, and equal times are ordered by key.
 */
export interface JournalPosition {
  /** Epoch milliseconds. */
  readonly time: number;
  readonly key: string;
}

/**
 * The opaque page token: base64url JSON of the position and the provider filter it was made
 * for. AIP-158 asks that a token be used with the request it came from, so another filter is refused.
 */
export function encodePageToken(position: JournalPosition, provider: string | undefined): string {
  return Buffer.from(JSON.stringify({ t: position.time, k: position.key, p: provider ?? null })).toString("base64url");
}

/** Reads a page token back; anything that is not one this store made is INVALID_ARGUMENT. */
export function decodePageToken(token: string, provider: string | undefined): JournalPosition {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    throw invalidToken();
  }
  const { t, k, p } = (parsed ?? {}) as { t?: unknown; k?: unknown; p?: unknown };
  if (!Number.isSafeInteger(t) || typeof k !== "string" || k.length === 0 || k.length > 128) throw invalidToken();
  if ((p ?? undefined) !== provider) {
    throw new ConnectError("the page token was made for another provider filter", Code.InvalidArgument);
  }
  return { time: t as number, key: k };
}

/** A page size the store will read: at least 1, at most MAX_JOURNAL_PAGE_SIZE. */
export function clampPageSize(pageSize: number): number {
  if (!Number.isFinite(pageSize)) return MAX_JOURNAL_PAGE_SIZE;
  return Math.min(MAX_JOURNAL_PAGE_SIZE, Math.max(1, Math.trunc(pageSize)));
}

/** A page from up to `pageSize + 1` rows read: the extra row only says that another page follows. */
export function journalPage(rows: JournalEntry[], pageSize: number, provider: string | undefined): JournalPage {
  if (rows.length <= pageSize) return { entries: rows };
  const entries = rows.slice(0, pageSize);
  const last = entries[entries.length - 1];
  return { entries, nextPageToken: encodePageToken({ time: last.time.getTime(), key: last.key }, provider) };
}

function invalidToken(): ConnectError {
  return new ConnectError("invalid page token", Code.InvalidArgument);
}
