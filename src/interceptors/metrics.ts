import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { Counter, Histogram, type Registry } from "prom-client";
import { normalizeProviderName } from "../providers/provider.js";
import { protocolOf } from "./protocol.js";

export interface MetricsOptions {
  /**
   * The providers a call may be labelled with; a call naming another is labelled
   * provider="", so that callers cannot grow the set of series. Default: any name.
   */
  providers?: Iterable<string>;
}

/** From 5 ms to 2 minutes: LLM calls range from a cached answer to a long generation. */
export const CALL_DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120];

/** "ok" and connect's snake_case names ("not_found"), by code. */
const CODE_LABELS: readonly string[] = Array.from({ length: 17 }, (_, code) => (code === 0 ? "ok" : codeToString(code as Code)));

interface Series {
  readonly calls: Counter.Internal;
  readonly duration: Histogram.Internal<string>;
}

/**
 * Records `passthrough_calls_total{protocol,provider,code}` and
 * `passthrough_call_duration_seconds{protocol,provider}` in `registry` for every call on every
 * protocol (REST included: the transcoder runs the same interceptors). A stream is counted
 * when its response ends. gRPC's own services (health, reflection) are not calls and are not
 * counted. Place it first, so that it sees the code the caller gets.
 */
export function createMetricsInterceptor(registry: Registry, options: MetricsOptions = {}): Interceptor {
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
  const known = options.providers === undefined ? undefined : new Set(options.providers);
  // Label children bound once per series: labels() hashes its arguments on every call.
  const series = new Map<string, Series>();

  const record = (protocol: string, provider: string, code: string, startedAt: number) => {
    const key = `${protocol}\0${provider}\0${code}`;
    let bound = series.get(key);
    if (bound === undefined) {
      bound = { calls: calls.labels(protocol, provider, code), duration: duration.labels(protocol, provider) };
      series.set(key, bound);
    }
    bound.calls.inc();
    bound.duration.observe((performance.now() - startedAt) / 1000);
  };
  const providerOf = (message: unknown): string => {
    const name = (message as { providerName?: unknown }).providerName;
    if (typeof name !== "string") return "";
    const normalized = normalizeProviderName(name);
    return known === undefined || known.has(normalized) ? normalized : "";
  };

  return (next) => async (request) => {
    if (request.service.typeName.startsWith("grpc.")) return next(request);
    const startedAt = performance.now();
    const protocol = protocolOf(request);
    let provider = "";
    if (request.stream) {
      request = { ...request, message: onFirst(request.message, (message) => (provider = providerOf(message))) };
    } else {
      provider = providerOf(request.message);
    }
    try {
      const response = await next(request);
      if (!response.stream) {
        record(protocol, provider, "ok", startedAt);
        return response;
      }
      return { ...response, message: onEnd(response.message, (code) => record(protocol, provider, code, startedAt)) };
    } catch (error) {
      record(protocol, provider, codeLabel(error), startedAt);
      throw error;
    }
  };
}

function codeLabel(error: unknown): string {
  return error instanceof ConnectError ? (CODE_LABELS[error.code] ?? "unknown") : "unknown";
}

async function* onFirst<T>(messages: AsyncIterable<T>, see: (message: T) => void): AsyncIterable<T> {
  let first = true;
  for await (const message of messages) {
    if (first) see(message);
    first = false;
    yield message;
  }
}

/** Calls `end` once with how the stream ended: "ok", its error's code, or "canceled" when abandoned. */
async function* onEnd<T>(messages: AsyncIterable<T>, end: (code: string) => void): AsyncIterable<T> {
  let code = CODE_LABELS[Code.Canceled];
  try {
    yield* messages;
    code = "ok";
  } catch (error) {
    code = codeLabel(error);
    throw error;
  } finally {
    end(code);
  }
}
