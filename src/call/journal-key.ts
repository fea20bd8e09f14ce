import { randomFillSync } from "node:crypto";

const KEY_BYTES = 32;
const pool = Buffer.allocUnsafe(KEY_BYTES * 256);
let offset = pool.length;

/**
 * A new journal key: 64 hex characters from 32 random bytes. Random bytes are drawn 8 KiB at
 * a time, since one `randomBytes` call per request costs more than the key itself.
 */
export function newJournalKey(): string {
  if (offset === pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  const key = pool.toString("hex", offset, offset + KEY_BYTES);
  offset += KEY_BYTES;
  return key;
}

/** The response header that carries the journal key on every protocol. */
export const JOURNAL_KEY_HEADER = "x-journal-key";
