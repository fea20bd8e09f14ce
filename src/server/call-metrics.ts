import { Counter, Histogram, type Registry } from "prom-client";
import type { CallListener } from "../call/record.js";
import { codeToString } from "../connect-internals.js";
import { JournalService } from "../gen/smarter/prompt/v1/journal_pb.js";
import { PassthroughService } from "../gen/smarter/prompt/v1/passthrough_pb.js";
import { callsProvider } from "../service/provider-methods.js";

export interface CallMetricsOptions {
  /**
   * The providers a call may be labelled with; a call naming another is labelled
   * provider="", so that callers cannot grow the set of series. Default: any name.
   */
  providers?: Iterable<string>;
}

/** From 5 ms to 2 minutes: LLM calls range from a cached answer to a long generation. */
const CALL_DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120];

interface Series {
  readonly calls: Counter.Internal;
  readonly duration: Histogram.Internal<string>;
}

/**
 * Records `passthrough_calls_total{protocol,provider,code}`,
 * `passthrough_call_duration_seconds{protocol,provider}` and, for calls that reached the
 * provider, `passthrough_upstream_duration_seconds{provider,status}` in `registry` from each
 * PassthroughService call's record when it ends: every call on every protocol, those that failed
 * before any interceptor ran included. A stream is counted when its response ends. JournalService
 * calls are counted apart, in `passthrough_journal_reads_total{protocol,method,code}`, so that
 * reading the journal does not count as calling a provider; ListProviders calls in
 * `passthrough_provider_lists_total{protocol,code}`, for the same reason. The upstream duration
 * is the record's `upstreamDurationMs` (to the response headers of a stream, to the end of a
 * unary body, retries included); `status` is the provider's last HTTP status, or `error` when it
 * gave none (refused, reset, timed out, cancelled).
 */
export function createCallMetrics(registry: Registry, options: CallMetricsOptions = {}): CallListener {
  const calls = new Counter({
    name: "passthrough_calls_total",
    help: "Calls by protocol, provider and outcome (ok or the snake_case code name).",
    labelNames: ["protocol", "provider", "code"],
    registers: [registry],
  });
  const duration = new Histogram({
    name: "passthrough_call_duration_seconds",
    help: "Call duration in seconds, until the last message of a stream.",
    labelNames: ["protocol", "provider"],
    buckets: CALL_DURATION_BUCKETS,
    registers: [registry],
  });
  const upstreamDuration = new Histogram({
    name: "passthrough_upstream_duration_seconds",
    help: "How long the provider took to answer, retries included: to the response headers of a stream, to the end of a unary body.",
    labelNames: ["provider", "status"],
    buckets: CALL_DURATION_BUCKETS,
    registers: [registry],
  });
  const journalReads = new Counter({
    name: "passthrough_journal_reads_total",
    help: "JournalService calls by protocol, method and outcome (ok or the snake_case code name).",
    labelNames: ["protocol", "method", "code"],
    registers: [registry],
  });
  const providerLists = new Counter({
    name: "passthrough_provider_lists_total",
    help: "ListProviders calls by protocol and outcome (ok or the snake_case code name).",
    labelNames: ["protocol", "code"],
    registers: [registry],
  });
  const known = options.providers === undefined ? undefined : new Set(options.providers);
  // Label children bound once per series: labels() hashes its arguments on every call.
  const series = new Map<string, Series>();
  const upstreamSeries = new Map<string, Histogram.Internal<string>>();

  return (call) => {
    const outcome = call.outcome?.code ?? 0;
    const code = outcome === 0 ? "ok" : codeToString(outcome);
    const service = call.method.parent.typeName;
    if (service === JournalService.typeName) {
      journalReads.labels(call.protocol, call.method.name, code).inc();
      return;
    }
    if (call.method === PassthroughService.method.listProviders) {
      providerLists.labels(call.protocol, code).inc();
      return;
    }
    if (!callsProvider(call.method)) return;
    const name = call.providerName ?? "";
    const provider = known === undefined || known.has(name) ? name : "";
    const key = `${call.protocol}\0${provider}\0${code}`;
    let bound = series.get(key);
    if (bound === undefined) {
      bound = { calls: calls.labels(call.protocol, provider, code), duration: duration.labels(call.protocol, provider) };
      series.set(key, bound);
    }
    bound.calls.inc();
    bound.duration.observe((call.durationMs ?? 0) / 1000);
    if (call.upstreamDurationMs !== undefined) {
      const status = call.upstreamStatus === undefined ? "error" : String(call.upstreamStatus);
      const upstreamKey = `${provider}\0${status}`;
      let upstream = upstreamSeries.get(upstreamKey);
      if (upstream === undefined) upstreamSeries.set(upstreamKey, (upstream = upstreamDuration.labels(provider, status)));
      upstream.observe(call.upstreamDurationMs / 1000);
    }
  };
}
