import { Counter, Gauge, type Registry } from "prom-client";
import type { Config } from "../config/schema.js";
import { createSignalDispatcher, type SignalDispatcher } from "./dispatcher.js";
import type { SignalSink, SinkContext } from "./sink.js";
import { createSink } from "./sinks/index.js";

/**
 * The configured sinks behind one dispatcher. A sink is created at start (a module that fails
 * to load stops the start, naming it), but connects when it first delivers: one that cannot be
 * reached yet is retried, and readiness says so.
 */
export async function openSignals(config: Config["signals"], context: SinkContext, extraSinks: readonly SignalSink[] = []): Promise<SignalDispatcher> {
  const sinks = [...(await Promise.all(config.sinks.map((sink) => createSink(sink, context)))), ...extraSinks];
  return createSignalDispatcher({ sinks, queueSize: config.queueSize, batchSize: config.batchSize, logger: context.logger });
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
