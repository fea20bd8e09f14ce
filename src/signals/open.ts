import path from "node:path";
import { Counter, Gauge, type Registry } from "prom-client";
import type { Config } from "../config/schema.js";
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
  const read = <K extends "queued" | "delivered" | "retries" | "dropped">(key: K) =>
    function (this: Gauge | Counter) {
      this.reset();
      for (const sink of dispatcher.stats()) (this as Gauge).inc({ sink: sink.name }, sink[key]);
    };
  new Gauge({ name: "passthrough_signal_queue_depth", help: "Signal events waiting for delivery, per sink.", labelNames: ["sink"], registers: [registry], collect: read("queued") });
  new Counter({ name: "passthrough_signals_delivered_total", help: "Signal events delivered, per sink.", labelNames: ["sink"], registers: [registry], collect: read("delivered") });
  new Counter({ name: "passthrough_signal_retries_total", help: "Failed signal deliveries that were retried, per sink.", labelNames: ["sink"], registers: [registry], collect: read("retries") });
  new Counter({ name: "passthrough_signals_dropped_total", help: "Signal events dropped (queue full, or shutdown's deadline passed), per sink.", labelNames: ["sink"], registers: [registry], collect: read("dropped") });
}
