import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { WriteAheadLog } from "../durable/write-ahead-log.js";
import { messageOf } from "../logging/logger.js";
import type { JournalEntry } from "../store/store.js";
import { reviveEntry, SpoolFile, spoolLine } from "./spool.js";
import { validateJournalWriterOptions, type JournalWriterOptions, type ValidJournalWriterOptions } from "./writer-options.js";

export type { JournalWriterOptions } from "./writer-options.js";

/** What a metrics endpoint reads: gauges (queued, queuedBytes, spoolPending, spooled) and counters (written, dropped). */
export interface JournalWriterStats {
  /** Entries in memory waiting for the store. */
  readonly queued: number;
  readonly queuedBytes: number;
  /** Entries in memory waiting to be appended to the spool. */
  readonly spoolPending: number;
  /** Entries in the spool file waiting for the store. */
  readonly spooled: number;
  /** Entries the store confirmed, since start. */
  readonly written: number;
  /** Entries lost because the spool could not take them (a disk failure), since start. */
  readonly dropped: number;
  /** How long the last confirmed batch took. */
  readonly lastBatchMs?: number;
  /** False from a failed batch until one succeeds again. */
  readonly storeReachable: boolean;
}

/** The journal's write side (SPEC section 7): entries go to the store off the call path, in batches. */
export interface JournalWriter {
  /** Queues an entry; never throws and never waits. */
  write(entry: JournalEntry): void;
  /**
   * Resolves once every entry written before it is in the store or the spool file (synced), or
   * counted as dropped; also when store and disk both fail, the queue then keeping what it can.
   */
  flush(): Promise<void>;
  /** Flushes within `timeoutMs`, then stops; what is still in memory then is appended to the spool at once. */
  close(timeoutMs: number): Promise<void>;
  stats(): JournalWriterStats;
}

/**
 * Builds the writer and starts replaying the spool a previous process left. Entries wait in a
 * bounded queue and are written in batches, one `writeJournal` at a time, the next as soon as
 * the previous one is confirmed. When the store fails, batches are retried with backoff; once
 * the queue is full (or on flush and close while the store is failing) the queue and every
 * later entry go to the append-only spool, until the store has taken the whole spool back, in
 * order, after which the file is removed. Entries are never lost to a store outage, and may be
 * written twice only where `writeJournal` skips them by key (a batch that timed out but
 * committed); only a spool that cannot be written drops entries, each counted and logged.
 */
export function createJournalWriter(options: JournalWriterOptions): JournalWriter {
  return new Writer(validateJournalWriterOptions(options));
}

interface Item {
  readonly entry: JournalEntry;
  /** Approximate memory: body characters and a fixed amount. */
  readonly bytes: number;
  /** Order of arrival, for flush and the write-ahead log. */
  readonly seq: number;
}

const ENTRY_OVERHEAD_BYTES = 512;
/** Most characters of JSON lines in one append. */
const APPEND_GROUP_CHARS = 8 * 1024 * 1024;
/** Keys named in a log line about a drop. */
const LOGGED_KEYS = 10;

const sizeOf = (entry: JournalEntry) =>
  ENTRY_OVERHEAD_BYTES + (entry.requestBody?.length ?? 0) + (entry.responseBody?.length ?? 0) + (entry.error?.length ?? 0);

class Writer implements JournalWriter {
  readonly #opt: ValidJournalWriterOptions;
  readonly #spool: SpoolFile;
  readonly #writeAhead: WriteAheadLog | undefined;
  /** Waiting for the store, oldest first; a batch in flight stays at its head until confirmed. */
  #queue: Item[] = [];
  #queuedBytes = 0;
  /** Waiting for the spool, oldest first, then being appended. */
  #pending: Item[] = [];
  #pendingBytes = 0;
  #appending: Item[] = [];
  /** While true every new entry goes to the spool, so none overtakes one already there. */
  #spooling = false;
  /** Bytes of the spool already in the store, and the batch read from there but not yet confirmed. */
  #replayOffset = 0;
  #replay: { entries: JournalEntry[]; end: number; lines: number } | undefined;
  /** Bytes of a spool a previous process left, whose lines are still to be counted. */
  #recovered = 0;
  #spooled = 0;
  #written = 0;
  #dropped = 0;
  #lastBatchMs: number | undefined;
  #reachable = true;
  #failures = 0;
  #seq = 0;
  /** Bumped when the queue moves to the spool, so that the batch then in flight no longer counts. */
  #generation = 0;
  #waiters: Array<{ seq: number; resolve: () => void }> = [];
  #pumpScheduled = false;
  #pumpActive = false;
  /** The pump's last run, for close to wait on. */
  #pumping: Promise<void> | undefined;
  #appendingLoop: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #closing: Promise<void> | undefined;
  #stopped = false;

  constructor(options: ValidJournalWriterOptions) {
    this.#opt = options;
    const { spoolFile, writeAheadFile, logger } = options;
    let recovered = 0;
    try {
      mkdirSync(dirname(spoolFile), { recursive: true });
      recovered = SpoolFile.recover(spoolFile);
    } catch (error) {
      logger.warn({ spoolFile, error: messageOf(error) }, "journal spool folder or file unusable; entries are dropped if the store fails");
    }
    this.#spool = new SpoolFile(spoolFile, recovered);
    this.#writeAhead = writeAheadFile === undefined ? undefined : new WriteAheadLog(writeAheadFile, "journal", logger);
    // A dead process's log goes behind the spool, whose replay writes it (the store skips the keys it has).
    this.#writeAhead?.adoptLeftovers((lines) => {
      if (lines.length === 0) return;
      this.#spool.appendSync(`${lines.join("\n")}\n`);
      logger.info({ entries: lines.length, spoolFile }, "journal write-ahead log of a process that did not stop cleanly: moved to the spool");
    });
    const leftover = this.#spool.size;
    if (leftover > 0) {
      logger.info({ spoolFile, bytes: leftover }, "journal spool found: replaying it");
      this.#spooling = true;
      this.#recovered = leftover;
      this.#schedulePump();
    }
  }

  write(entry: JournalEntry): void {
    try {
      if (this.#stopped) return this.#writeAfterClose(entry);
      const seq = ++this.#seq;
      this.#writeAheadOf(entry, seq);
      const item: Item = { entry, bytes: sizeOf(entry), seq };
      if (!this.#spooling) {
        const { queueSize, maxQueueBytes } = this.#opt;
        const fits = this.#queue.length < queueSize && (this.#queue.length === 0 || this.#queuedBytes + item.bytes <= maxQueueBytes);
        if (fits) {
          this.#queue.push(item);
          this.#queuedBytes += item.bytes;
          this.#schedulePump();
          return;
        }
        this.#spill("the queue is full");
      }
      // Entries wait for the disk within twice the queue's bound: room for the spilled queue and as much again.
      if (this.#pending.length > 0 && this.#pendingBytes + item.bytes > 2 * this.#opt.maxQueueBytes) {
        return this.#drop([item], "the spool file cannot keep up");
      }
      this.#pending.push(item);
      this.#pendingBytes += item.bytes;
      this.#scheduleAppend();
    } catch (error) {
      this.#opt.logger.error({ key: entry?.key, error: messageOf(error) }, "journal write failed");
    }
  }

  flush(): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    return new Promise((resolve) => {
      this.#waiters.push({ seq: this.#seq, resolve });
      if (!this.#reachable) this.#spill("flushed while the store is unavailable");
      this.#settle();
    });
  }

  close(timeoutMs: number): Promise<void> {
    this.#closing ??= this.#close(timeoutMs);
    return this.#closing;
  }

  stats(): JournalWriterStats {
    return {
      queued: this.#queue.length,
      queuedBytes: this.#queuedBytes,
      spoolPending: this.#pending.length + this.#appending.length,
      spooled: this.#spooled,
      written: this.#written,
      dropped: this.#dropped,
      lastBatchMs: this.#lastBatchMs,
      storeReachable: this.#reachable,
    };
  }

  async #close(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const remaining = () => Math.max(0, deadline - Date.now());
    await within(this.flush(), remaining());
    this.#stopped = true;
    this.#wake?.();
    // The pump ends after its batch in flight (bounded by writeTimeoutMs), the appender after its append.
    await within(Promise.all([this.#pumping, this.#appendingLoop]), remaining());
    const left = [...this.#queue, ...this.#pending];
    this.#queue = [];
    this.#pending = [];
    this.#queuedBytes = this.#pendingBytes = 0;
    if (left.length > 0) {
      try {
        this.#spool.appendSync(left.map((item) => `${spoolLine(item.entry)}\n`).join(""));
        this.#spooled += left.length;
      } catch (error) {
        this.#drop(left, "the spool file could not be written at close", error);
      }
    }
    await within(this.#spool.close(), remaining()).catch((error: unknown) => {
      this.#opt.logger.error({ spoolFile: this.#opt.spoolFile, error: messageOf(error) }, "journal spool could not be synced at close");
    });
    this.#writeAhead?.release(this.#seq);
    this.#writeAhead?.close();
    for (const waiter of this.#waiters.splice(0)) waiter.resolve();
  }

  /**
   * Writes the entry to the write-ahead log before the call's answer is complete. The queue
   * keeps the entry, not its line: what waits for a batch is held past the young generation's
   * collections, so the less it holds the less they copy; the rare spool path serializes again.
   */
  #writeAheadOf(entry: JournalEntry, seq: number): void {
    if (this.#writeAhead === undefined) return;
    let line: string;
    try {
      line = spoolLine(entry);
    } catch {
      return; // dropped, counted, when it reaches the spool
    }
    this.#writeAhead.append(line, seq);
  }

  #writeAfterClose(entry: JournalEntry): void {
    try {
      this.#spool.appendSync(`${spoolLine(entry)}\n`);
      this.#spooled++;
    } catch (error) {
      this.#drop([{ entry, bytes: 0, seq: 0 }], "the journal was closed and the spool file could not be written", error);
    }
  }

  /** From now on entries go to the spool, the queue first, in order. */
  #spill(reason: string): void {
    if (this.#spooling || this.#stopped) return;
    this.#spooling = true;
    this.#generation++;
    this.#opt.logger.warn({ queued: this.#queue.length, spoolFile: this.#opt.spoolFile, reason }, "journal entries go to the spool file");
    this.#pending = this.#queue.concat(this.#pending);
    this.#pendingBytes += this.#queuedBytes;
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#scheduleAppend();
  }

  #drop(items: readonly Item[], reason: string, error?: unknown): void {
    if (items.length === 0) return;
    this.#dropped += items.length;
    const keys = items.slice(0, LOGGED_KEYS).map((item) => item.entry.key);
    this.#opt.logger.error(
      { dropped: items.length, keys, spoolFile: this.#opt.spoolFile, ...(error !== undefined && { error: messageOf(error) }) },
      `journal entries dropped: ${reason}`,
    );
    this.#settle();
  }

  /** Releases what left memory from the write-ahead log, and resolves the flushes whose entries all did. */
  #settle(): void {
    const oldest = Math.min(this.#queue[0]?.seq ?? Infinity, this.#appending[0]?.seq ?? Infinity, this.#pending[0]?.seq ?? Infinity);
    this.#writeAhead?.release(oldest === Infinity ? this.#seq : oldest - 1);
    if (this.#waiters.length === 0) return;
    const ready = this.#waiters.filter((waiter) => waiter.seq < oldest);
    if (ready.length === 0) return;
    this.#waiters = this.#waiters.filter((waiter) => waiter.seq >= oldest);
    this.#spool.sync().then(
      () => ready.forEach((waiter) => waiter.resolve()),
      (error: unknown) => {
        this.#opt.logger.error({ spoolFile: this.#opt.spoolFile, error: messageOf(error) }, "journal spool could not be synced");
        ready.forEach((waiter) => waiter.resolve());
      },
    );
  }

  #scheduleAppend(): void {
    this.#appendingLoop ??= this.#appendAll().finally(() => {
      this.#appendingLoop = undefined;
      if (this.#pending.length > 0 && !this.#stopped) this.#scheduleAppend();
    });
  }

  /** Appends what waits for the spool, a group at a time, in order. */
  async #appendAll(): Promise<void> {
    await Promise.resolve();
    while (this.#pending.length > 0 && !this.#stopped) {
      let chars = 0;
      let count = 0;
      while (count < this.#pending.length && (count === 0 || chars < APPEND_GROUP_CHARS)) chars += this.#pending[count++].bytes;
      const group = this.#pending.splice(0, count);
      this.#pendingBytes -= group.reduce((sum, item) => sum + item.bytes, 0);
      const lines: string[] = [];
      // Outstanding from here on, for flush, also while a bad entry is dropped below.
      this.#appending = group;
      this.#appending = group.filter((item) => {
        try {
          lines.push(`${spoolLine(item.entry)}\n`);
          return true;
        } catch (error) {
          this.#drop([item], "the entry cannot be serialized", error);
          return false;
        }
      });
      try {
        await this.#spool.append(lines.join(""));
        this.#spooled += this.#appending.length;
      } catch (error) {
        this.#appendFailed(this.#appending, error);
      }
      this.#appending = [];
      this.#settle();
      this.#schedulePump();
    }
  }

  /**
   * The disk refused a group. When the spool holds nothing still to replay, the writer goes
   * back to the queue and keeps there what fits, oldest first; the rest is dropped.
   */
  #appendFailed(group: Item[], error: unknown): void {
    if (this.#unreplayed()) return this.#drop(group, "the spool file could not be written", error);
    const items = group.concat(this.#pending);
    this.#pending = [];
    this.#pendingBytes = 0;
    if (this.#spool.size > 0) this.#spoolReplayed();
    this.#spooling = false;
    const lost: Item[] = [];
    for (const item of items) {
      const fits = this.#queue.length < this.#opt.queueSize && (this.#queue.length === 0 || this.#queuedBytes + item.bytes <= this.#opt.maxQueueBytes);
      if (fits) {
        this.#queue.push(item);
        this.#queuedBytes += item.bytes;
      } else {
        lost.push(item);
      }
    }
    this.#drop(lost, "the spool file could not be written", error);
    // What the flushes waited for can go nowhere now: they resolve, and the queue waits for the store.
    for (const waiter of this.#waiters.splice(0)) waiter.resolve();
  }

  /** Whether the spool holds entries the store has not confirmed. */
  #unreplayed(): boolean {
    return this.#recovered > 0 || this.#replay !== undefined || this.#replayOffset < this.#spool.size;
  }

  #schedulePump(): void {
    if (this.#pumpActive || this.#pumpScheduled || this.#stopped) return;
    this.#pumpScheduled = true;
    setImmediate(() => {
      this.#pumpScheduled = false;
      if (this.#pumpActive || this.#stopped) return;
      this.#pumpActive = true;
      this.#pumping = this.#pump();
    });
  }

  /** Writes batches back to back: the queue first (it is older), then the spool, until both are empty. */
  async #pump(): Promise<void> {
    // Cleared as it returns, not a microtask later, so that a wake-up just after is not lost.
    try {
      while (!this.#stopped) {
        if (this.#recovered > 0) {
          await this.#countRecovered();
        } else if (this.#queue.length > 0) {
          if (this.#queue.length < this.#opt.batchSize && this.#opt.lingerMs > 0 && this.#waiters.length === 0 && this.#closing === undefined) {
            await new Promise((resolve) => setTimeout(resolve, this.#opt.lingerMs));
          }
          if (!(await this.#writeQueued())) await this.#backoff();
        } else if (this.#replay !== undefined || this.#replayOffset < this.#spool.size) {
          if (!(await this.#replayBatch())) await this.#backoff();
        } else {
          if (this.#spooling && this.#pending.length === 0 && this.#appending.length === 0) this.#spoolReplayed();
          if (this.#queue.length === 0) return;
        }
      }
    } finally {
      this.#pumpActive = false;
    }
  }

  async #countRecovered(): Promise<void> {
    try {
      this.#spooled += await this.#spool.countLines(this.#recovered);
    } catch (error) {
      this.#opt.logger.error({ spoolFile: this.#opt.spoolFile, error: messageOf(error) }, "journal spool could not be counted");
    }
    this.#recovered = 0;
  }

  /** One batch from the head of the queue; false when it failed. */
  async #writeQueued(): Promise<boolean> {
    const { batchSize, maxQueueBytes } = this.#opt;
    let bytes = 0;
    let count = 0;
    while (count < Math.min(batchSize, this.#queue.length) && (count === 0 || bytes + this.#queue[count].bytes <= maxQueueBytes)) bytes += this.#queue[count++].bytes;
    const generation = this.#generation;
    const written = await this.#attempt(this.#queue.slice(0, count).map((item) => item.entry));
    // Spilled meanwhile: these entries are in the spool too, and count when it is replayed.
    if (generation !== this.#generation) return written;
    if (!written) return false;
    this.#queue.splice(0, count);
    this.#queuedBytes -= bytes;
    this.#written += count;
    this.#settle();
    return true;
  }

  /** The next batch of the spool, read once and kept until the store confirms it; false when it failed. */
  async #replayBatch(): Promise<boolean> {
    if (this.#replay === undefined) {
      let read;
      try {
        read = await this.#spool.read(this.#replayOffset, this.#opt.batchSize, this.#opt.maxQueueBytes);
      } catch (error) {
        this.#failures++;
        this.#opt.logger.error({ spoolFile: this.#opt.spoolFile, error: messageOf(error) }, "journal spool could not be read");
        return false;
      }
      const entries: JournalEntry[] = [];
      let bad = 0;
      for (const line of read.lines) {
        const entry = reviveEntry(line);
        if (entry === undefined) bad++;
        else entries.push(entry);
      }
      if (bad > 0) {
        this.#dropped += bad;
        this.#opt.logger.error({ dropped: bad, spoolFile: this.#opt.spoolFile }, "journal entries dropped: spool lines that are not entries (a torn write)");
      }
      this.#replay = { entries, end: read.end, lines: read.lines.length };
    }
    const replay = this.#replay;
    if (replay.entries.length > 0 && !(await this.#attempt(replay.entries))) return false;
    this.#replay = undefined;
    this.#replayOffset = replay.end;
    this.#spooled = Math.max(0, this.#spooled - replay.lines);
    this.#written += replay.entries.length;
    return true;
  }

  /** Everything spooled is in the store: remove the file and go back to the queue. */
  #spoolReplayed(): void {
    this.#spooling = false;
    this.#replayOffset = 0;
    this.#spooled = 0;
    this.#opt.logger.info({ spoolFile: this.#opt.spoolFile }, "journal spool replayed");
    this.#spool.remove().catch((error: unknown) => {
      this.#opt.logger.error({ spoolFile: this.#opt.spoolFile, error: messageOf(error) }, "journal spool could not be removed");
    });
  }

  /** One `writeJournal`, bounded by writeTimeoutMs; true when the store confirmed it. */
  async #attempt(entries: JournalEntry[]): Promise<boolean> {
    const { store, writeTimeoutMs, now, onBatchWritten, logger } = this.#opt;
    const started = now();
    try {
      await within(store.writeJournal(entries), writeTimeoutMs, () => new Error(`the journal store did not confirm a batch within ${writeTimeoutMs} ms`));
    } catch (error) {
      this.#failures++;
      if (this.#reachable) logger.warn({ error: messageOf(error) }, "journal store unavailable: entries wait in the queue, then in the spool file");
      this.#reachable = false;
      // Nobody waits for a flush or close on the store's recovery: the spool makes them durable now.
      if (this.#waiters.length > 0 || this.#closing !== undefined) this.#spill("flushed while the store is unavailable");
      return false;
    }
    const durationMs = now() - started;
    this.#lastBatchMs = durationMs;
    this.#failures = 0;
    if (!this.#reachable) logger.info({ spooled: this.#spooled }, "journal store reachable again");
    this.#reachable = true;
    try {
      onBatchWritten?.(durationMs, entries.length);
    } catch (error) {
      logger.error({ error: messageOf(error) }, "journal onBatchWritten failed");
    }
    return true;
  }

  /** Waits before the next attempt: exponential, capped, half of it random; close cuts it short. */
  #backoff(): Promise<void> {
    const { retryMs, maxRetryMs } = this.#opt;
    const delay = Math.min(maxRetryMs, retryMs * 2 ** Math.min(this.#failures - 1, 30));
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, delay / 2 + (Math.random() * delay) / 2);
      timer.unref();
      this.#wake = done;
    });
  }
}

/** `promise`, or a rejection with `timeout()` (or a plain resolve without one) once `ms` have passed. */
function within<T>(promise: Promise<T>, ms: number, timeout?: () => Error): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<undefined>((resolve, reject) => {
    timer = setTimeout(() => (timeout ? reject(timeout()) : resolve(undefined)), ms);
  });
  return Promise.race([promise, bound]).finally(() => clearTimeout(timer));
}
