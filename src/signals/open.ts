import path from "node:path";
import type { Registry } from "prom-client";
import type { Config } from "../config/schema.js";
import { registerScraped } from "../server/metrics.js";
import { createSignalDispatcher, type SignalDispatcher } from "./dispatcher.js";
import type { SignalSink, SinkContext } from "./sink.js";
import { createSink } from "./sinks/index.js";

/** A batch that is not full waits this long for more: fewer, larger deliveries on a busy gateway. */
const SIGNAL_LINGER_MS = 20;

/**
 * The configured sinks behind one dispatcher. A sink is created at start (a module that fails
 * to load stops the start, naming it), but connects when it first delivers: one that cannot be
 * reached yet is retried, and readiness says so.
 */
export async function openSignals(config: Config["signals"], context: SinkContext, instance: string, extraSinks: readonly SignalSink[] = []): Promise<SignalDispatcher> {
  const sinks = [...(await Promise.all(config.sinks.map((sink) => createSink(sink, context)))), ...extraSinks];
  return createSignalDispatcher({
    sinks,
    queueSize: config.queueSize,
    batchSize: config.batchSize,
    lingerMs: SIGNAL_LINGER_MS,
    logger: context.logger,
    // One file per instance, as for the journal's spool: instances sharing a folder never share one.
    writeAheadFile: path.resolve(config.spoolDir, `${instance}.wal`),
  });
}

/** Per-sink queue depth, deliveries, retries and drops, read from the dispatcher at each scrape. */
export function registerSignalMetrics(registry: Registry, dispatcher: SignalDispatcher): void {
  const perSink = (key: "queued" | "delivered" | "retries" | "dropped") => () => dispatcher.stats().map((sink) => [{ sink: sink.name }, sink[key]] as const);
  registerScraped(registry, "gauge", "passthrough_signal_queue_depth", "Signal events waiting for delivery, per sink.", perSink("queued"), ["sink"]);
  registerScraped(registry, "counter", "passthrough_signals_delivered_total", "Signal events delivered, per sink.", perSink("delivered"), ["sink"]);
  registerScraped(registry, "counter", "passthrough_signal_retries_total", "Failed signal deliveries that were retried, per sink.", perSink("retries"), ["sink"]);
  registerScraped(registry, "counter", "passthrough_signals_dropped_total", "Signal events dropped (queue full, or shutdown's deadline passed), per sink.", perSink("dropped"), ["sink"]);
}
