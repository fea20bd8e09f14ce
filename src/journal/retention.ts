import { messageOf, type Logger } from "../logging/logger.js";
import type { Store } from "../store/store.js";

export interface JournalRetentionOptions {
  store: Store;
  /** Entries older than this many days are deleted. */
  retentionDays: number;
  logger: Logger;
  /** Between two runs. Default 1 hour. */
  intervalMs?: number;
  /** Before the first run, so that a start is not slowed by it. Default 10 s. */
  firstRunMs?: number;
  /** Rows per delete transaction, so that no lock is held long. Default 500. */
  batchSize?: number;
  /** Default `Date.now`. */
  now?: () => number;
}

export interface JournalRetention {
  /** Stops the timers; a run under way is not interrupted. */
  stop(): void;
}

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Deletes journal entries past `retentionDays` in the background: once shortly after start,
 * then every `intervalMs`, never two runs at once. Failures are logged and the next run tries
 * again; the timers do not keep the process alive.
 */
export function startJournalRetention(options: JournalRetentionOptions): JournalRetention {
  const { store, retentionDays, logger, intervalMs = 60 * 60 * 1000, firstRunMs = 10_000, batchSize = 500, now = Date.now } = options;
  if (!(retentionDays > 0) || !Number.isFinite(retentionDays)) throw new Error("journal retention: retentionDays must be a positive number");
  if (!(intervalMs > 0)) throw new Error("journal retention: intervalMs must be positive");
  let running = false;
  let stopped = false;

  const run = async () => {
    if (running || stopped) return;
    running = true;
    const before = new Date(now() - retentionDays * DAY_MS);
    try {
      const deleted = await store.deleteJournalBefore(before, { batchSize });
      if (deleted > 0) logger.info({ deleted, before: before.toISOString() }, "journal retention deleted old entries");
    } catch (error) {
      logger.error({ error: messageOf(error) }, "journal retention failed; the next run tries again");
    } finally {
      running = false;
    }
  };

  const first = setTimeout(run, firstRunMs);
  const every = setInterval(run, intervalMs);
  first.unref();
  every.unref();
  return {
    stop() {
      stopped = true;
      clearTimeout(first);
      clearInterval(every);
    },
  };
}
