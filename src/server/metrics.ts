import { collectDefaultMetrics, Counter, Gauge, Registry } from "prom-client";
import type { NodeHandler } from "./listener.js";

/** A registry of the gateway's own (not prom-client's global one), with the default process metrics. */
export function createMetricsRegistry(): Registry {
  const registry = new Registry();
  // The event-loop delay is sampled every 100 ms rather than prom-client's 10: each sample wakes an idle
  // process, and 100 wakeups a second cost a few percent of a core on a small VM.
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 100 });
  return registry;
}

/** What a scraped metric reads: one unlabelled value, or one value per set of labels. */
export type Scraped = number | Iterable<readonly [Record<string, string>, number]>;

/**
 * A gauge or a counter whose values are read, at each scrape, from the part that keeps them
 * (a queue's depth, a writer's running totals) instead of being updated on every change.
 */
export function registerScraped(registry: Registry, kind: "gauge" | "counter", name: string, help: string, read: () => Scraped, labelNames: string[] = []): void {
  const options = { name, help, labelNames, registers: [registry] };
  const collect = function (this: Gauge | Counter) {
    fill(this, read());
  };
  if (kind === "gauge") new Gauge({ ...options, collect });
  else new Counter({ ...options, collect });
}

/** Replaces every series with what was read; `{}` is the unlabelled series. */
function fill(metric: { reset(): void; inc(labels: Record<string, string>, value: number): void }, value: Scraped): void {
  metric.reset();
  if (typeof value === "number") metric.inc({}, value);
  else for (const [labels, count] of value) metric.inc(labels, count);
}

/** `GET /metrics` in the Prometheus text format; the caller has set the no-cache headers. */
export function createMetricsHandler(registry: Registry): NodeHandler {
  return (req, res) => {
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain; charset=utf-8" });
      res.end("method not allowed\n");
      return;
    }
    registry.metrics().then(
      (body) => {
        res.writeHead(200, { "content-type": registry.contentType });
        res.end(req.method === "HEAD" ? "" : body);
      },
      () => {
        res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
        res.end("metrics unavailable\n");
      },
    );
  };
}
