import { randomFillSync } from "node:crypto";

const RANDOM_BYTES = 26;
const pool = Buffer.allocUnsafe(RANDOM_BYTES * 256);
let offset = pool.length;

/**
 * A new journal key: 64 hex characters, the start time in milliseconds (12 digits) then 26
 * random bytes. Keys that grow with time land at the right edge of the journal's primary-key
 * index instead of on a random page of it, so a row costs SQLite far fewer page writes; the
 * 208 random bits keep a key unguessable. Random bytes are drawn 6.5 KiB at a time, since one
 * `randomBytes` call per request costs more than the key itself.
 */
export function newJournalKey(now: number): string {
  if (offset === pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  const key = now.toString(16).padStart(12, "0") + pool.toString("hex", offset, offset + RANDOM_BYTES);
  offset += RANDOM_BYTES;
  return key;
}

/** The response header that carries the journal key on every protocol. */
export const JOURNAL_KEY_HEADER = "x-journal-key";
