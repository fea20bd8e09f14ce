// HTTP load generator (its own process): autocannon at fixed concurrency, a warm-up run, then the
// measured run. Latencies come from autocannon's per-response event (sub-millisecond precision;
// its own histogram rounds to whole milliseconds).
import autocannon, { type AutocannonResult } from "autocannon";
import { loadParams, markStart, runGenerator } from "./load-ipc.js";
import { summarize, type LatencySummary } from "./stats.js";

export interface HttpLoadParams {
  url: string;
  headers: Record<string, string>;
  body: string;
  connections: number;
  durationS: number;
  warmupS: number;
}

export interface HttpLoadResult {
  seconds: number;
  ok: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  statusCodes: Record<string, number>;
  latencyMs: LatencySummary;
}

function fire(params: HttpLoadParams, durationS: number, latencies?: number[]): Promise<AutocannonResult> {
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: params.url,
        method: "POST",
        headers: params.headers,
        body: params.body,
        connections: params.connections,
        pipelining: 1,
        duration: durationS,
        timeout: 10,
      },
      (error, result) => (error ? reject(error) : resolve(result)),
    );
    if (latencies) {
      instance.on("response", (_client: unknown, statusCode: number, _bytes: number, responseTimeMs: number) => {
        if (statusCode >= 200 && statusCode < 300) latencies.push(responseTimeMs);
      });
    }
  });
}

async function generate(): Promise<HttpLoadResult> {
  const params = loadParams<HttpLoadParams>();
  if (params.warmupS > 0) await fire(params, params.warmupS);
  const latencies: number[] = [];
  await markStart();
  const started = performance.now();
  const result = await fire(params, params.durationS, latencies);
  const seconds = (performance.now() - started) / 1000;
  const statusCodes: Record<string, number> = {};
  for (const [code, { count }] of Object.entries(result.statusCodeStats)) statusCodes[code] = count;
  return {
    seconds,
    ok: result["2xx"],
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    statusCodes,
    latencyMs: summarize(latencies),
  };
}

void runGenerator(generate);
