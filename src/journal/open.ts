import path from "node:path";
import { Histogram, type Registry } from "prom-client";
import type { CallListener } from "../call/record.js";
import type { Config } from "../config/schema.js";
import type { Logger } from "../logging/logger.js";
import { registerScraped } from "../server/metrics.js";
import { callsProvider } from "../service/provider-methods.js";
import type { Store } from "../store/store.js";
import { journalEntryOf } from "./entry.js";
import { startJournalRetention } from "./retention.js";
import { createJournalWriter, type JournalWriter } from "./writer.js";

export interface Journal {
  readonly writer: JournalWriter;
  /** Journals every admitted Passthrough and PassthroughStream call when it ends (not ListProviders); refused calls are only counted and logged (SPEC section 6). */
  readonly onCallEnd: CallListener;
  /** Stops the retention task and flushes the writer within `timeoutMs`. */
  close(timeoutMs: number): Promise<void>;
}

export interface OpenJournalOptions {
  store: Store;
  logger: Logger;
  /** This instance's name: its spool file is `<spoolDir>/<instance>.spool`, so instances sharing a folder never share a file. */
  instance: string;
  metrics: Registry;
}

/** A batch that is not full waits this long for more: fewer, larger transactions on a busy gateway. */
const JOURNAL_LINGER_MS = 50;

/** The journal of SPEC section 7 over the store: the writer, its spool, retention and metrics. */
export function openJournal(config: Config["journal"], { store, logger, instance, metrics }: OpenJournalOptions): Journal {
  const batchSeconds = new Histogram({
    name: "passthrough_journal_batch_write_seconds",
    help: "How long one batch of journal entries took to write.",
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [metrics],
  });
  const writer = createJournalWriter({
    store,
    queueSize: config.queueSize,
    batchSize: config.batchSize,
    spoolFile: path.resolve(config.spoolDir, `${instance}.spool`),
    writeAheadFile: path.resolve(config.spoolDir, `${instance}.wal`),
    logger,
    lingerMs: JOURNAL_LINGER_MS,
    onBatchWritten: (ms) => batchSeconds.observe(ms / 1000),
  });
  registerJournalMetrics(metrics, writer);
  const retention = config.retentionDays === undefined ? undefined : startJournalRetention({ store, retentionDays: config.retentionDays, logger });
  const onCallEnd: CallListener = (call) => {
    if (call.admitted && callsProvider(call.method)) writer.write(journalEntryOf(call));
  };
  return {
    writer,
    onCallEnd,
    async close(timeoutMs) {
      retention?.stop();
      await writer.close(timeoutMs);
    },
  };
}

function registerJournalMetrics(registry: Registry, writer: JournalWriter): void {
  registerScraped(registry, "gauge", "passthrough_journal_queue_depth", "Journal entries in memory waiting for the database.", () => {
    const { queued, spoolPending } = writer.stats();
    return queued + spoolPending;
  });
  registerScraped(registry, "gauge", "passthrough_journal_spooled_entries", "Journal entries in the spool file waiting for the database.", () => writer.stats().spooled);
  registerScraped(registry, "counter", "passthrough_journal_written_total", "Journal entries the database confirmed.", () => writer.stats().written);
  registerScraped(registry, "counter", "passthrough_journal_dropped_total", "Journal entries lost because neither the database nor the spool could take them.", () => writer.stats().dropped);
}
