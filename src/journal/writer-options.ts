import { isAbsolute } from "node:path";
import type { Logger } from "../logging/logger.js";
import type { Store } from "../store/store.js";

/** How a journal writer is built (createJournalWriter); validateJournalWriterOptions fills the defaults. */
export interface JournalWriterOptions {
  store: Store;
  /** Most entries held in memory waiting for the store; past it they go to the spool file. */
  queueSize: number;
  /**
   * Most bytes held in memory waiting for the store, counted as body characters plus a fixed
   * amount per entry. Default 64 MiB: one entry may carry bodies of up to 32 MiB.
   */
  maxQueueBytes?: number;
  /** Most entries in one `writeJournal`. */
  batchSize: number;
  /** Absolute path of this instance's spool file; its folder is created when missing. */
  spoolFile: string;
  /**
   * Absolute base path of the write-ahead log (`<base>.<n>` files): each entry is written there
   * before `write` returns and kept until it is in the store or the spool, so that a process
   * that dies (SIGKILL) loses none; the next start moves what it left into the spool. Absent:
   * entries in memory die with the process.
   */
  writeAheadFile?: string;
  logger: Logger;
  /** The first retry's delay after a failed batch, doubled each time up to `maxRetryMs`, with jitter. Default 100 ms. */
  retryMs?: number;
  /** Default 5 s. */
  maxRetryMs?: number;
  /** A batch the store has not confirmed within this counts as failed. Default 5 s. */
  writeTimeoutMs?: number;
  /**
   * How long a batch that is not full waits for more entries before it is written, so that a
   * busy gateway writes fewer, larger transactions; flush and close do not wait. Default 0.
   */
  lingerMs?: number;
  /** The clock batch latency is measured with, in milliseconds. Default `performance.now`. */
  now?: () => number;
  /** Told of every batch the store confirmed: how long it took and how many entries it held (a latency histogram). */
  onBatchWritten?: (durationMs: number, count: number) => void;
}

/** The options with every default filled. */
export type ValidJournalWriterOptions = Required<Omit<JournalWriterOptions, "onBatchWritten" | "writeAheadFile">> & Pick<JournalWriterOptions, "onBatchWritten" | "writeAheadFile">;

/** Checks the options and fills every default, once, when the writer is built. */
export function validateJournalWriterOptions(options: JournalWriterOptions): ValidJournalWriterOptions {
  const positive = (name: string, value: number, integer: boolean) => {
    if (!(value > 0) || !Number.isFinite(value) || (integer && !Number.isInteger(value))) {
      throw new Error(`journal writer: ${name} must be a positive ${integer ? "integer" : "number"}`);
    }
    return value;
  };
  if (!isAbsolute(options.spoolFile)) throw new Error("journal writer: spoolFile must be an absolute path");
  if (options.writeAheadFile !== undefined && !isAbsolute(options.writeAheadFile)) throw new Error("journal writer: writeAheadFile must be an absolute path");
  return {
    ...options,
    queueSize: positive("queueSize", options.queueSize, true),
    batchSize: positive("batchSize", options.batchSize, true),
    maxQueueBytes: positive("maxQueueBytes", options.maxQueueBytes ?? 64 * 1024 * 1024, false),
    retryMs: positive("retryMs", options.retryMs ?? 100, false),
    maxRetryMs: positive("maxRetryMs", options.maxRetryMs ?? 5000, false),
    writeTimeoutMs: positive("writeTimeoutMs", options.writeTimeoutMs ?? 5000, false),
    lingerMs: Math.max(0, options.lingerMs ?? 0),
    now: options.now ?? (() => performance.now()),
  };
}
