// SSE load generator (its own process), with undici. Two modes:
// - "sse": sequential streams (concurrency 1), then a concurrent batch; time to first byte (first
//   body byte, i.e. the first event) and to last byte of each stream.
// - "streams": N streams opened at once and held until the provider ends them (memory scenario);
//   counts how many were open (first byte received, not yet ended) at the same time.
import { Pool } from "undici";
import { loadParams, markStart, runGenerator } from "./load-ipc.js";
import { summarize, type LatencySummary } from "./stats.js";

export interface SseLoadParams {
  mode: "sse" | "streams";
  url: string;
  headers: Record<string, string>;
  body: string;
  /** "sse": warm-up streams, sequential streams, then concurrentRequests streams at concurrency. */
  warmup?: number;
  sequential?: number;
  concurrency?: number;
  concurrentRequests?: number;
  /** "streams": how many to hold open at once, opened over rampMs. */
  streams?: number;
  rampMs?: number;
  timeoutMs: number;
}

export interface StreamTimings {
  count: number;
  ok: number;
  failed: number;
  firstFailure?: string;
  seconds: number;
  ttfbMs: LatencySummary;
  ttlbMs: LatencySummary;
  events: number;
}

export interface SseLoadResult {
  sequential?: StreamTimings;
  concurrent?: StreamTimings;
  streams?: StreamTimings & { opened: number; allOpenMs: number; maxOpen: number };
}

interface OneStream {
  ok: boolean;
  ttfb: number;
  ttlb: number;
  events: number;
  failure?: string;
}

async function oneStream(pool: Pool, params: SseLoadParams, path: string, onFirstByte?: () => void, onEnd?: () => void): Promise<OneStream> {
  const started = performance.now();
  let ttfb = Number.NaN;
  try {
    const { statusCode, headers, body } = await pool.request({
      path,
      method: "POST",
      headers: params.headers,
      body: params.body,
      headersTimeout: params.timeoutMs,
      bodyTimeout: params.timeoutMs,
    });
    let text = "";
    for await (const chunk of body) {
      if (Number.isNaN(ttfb)) {
        ttfb = performance.now() - started;
        onFirstByte?.();
      }
      text += (chunk as Buffer).toString();
    }
    const ttlb = performance.now() - started;
    if (!Number.isNaN(ttfb)) onEnd?.();
    const events = text.split("\n\n").filter((event) => event.startsWith("data:")).length;
    const contentType = String(headers["content-type"] ?? "");
    const ok = statusCode === 200 && contentType.startsWith("text/event-stream") && text.includes("data: [DONE]");
    return { ok, ttfb, ttlb, events, failure: ok ? undefined : `status ${statusCode} ${contentType}: ${text.slice(0, 200)}` };
  } catch (error) {
    if (!Number.isNaN(ttfb)) onEnd?.();
    return { ok: false, ttfb, ttlb: performance.now() - started, events: 0, failure: String(error) };
  }
}

function timings(results: OneStream[], seconds: number): StreamTimings {
  const ok = results.filter((result) => result.ok);
  return {
    count: results.length,
    ok: ok.length,
    failed: results.length - ok.length,
    firstFailure: results.find((result) => !result.ok)?.failure,
    seconds,
    ttfbMs: summarize(ok.map((result) => result.ttfb)),
    ttlbMs: summarize(ok.map((result) => result.ttlb)),
    events: ok.reduce((total, result) => total + result.events, 0),
  };
}

async function concurrently(pool: Pool, params: SseLoadParams, path: string, total: number, concurrency: number): Promise<OneStream[]> {
  const results: OneStream[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < total) {
      next++;
      results.push(await oneStream(pool, params, path));
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
  return results;
}

async function sse(params: SseLoadParams, url: URL): Promise<SseLoadResult> {
  const concurrency = params.concurrency ?? 32;
  const pool = new Pool(url.origin, { connections: concurrency, pipelining: 1, keepAliveTimeout: 60_000 });
  const path = url.pathname + url.search;
  await concurrently(pool, params, path, params.warmup ?? 10, 1);
  await markStart();

  let started = performance.now();
  const sequentialResults = await concurrently(pool, params, path, params.sequential ?? 100, 1);
  const sequential = timings(sequentialResults, (performance.now() - started) / 1000);

  started = performance.now();
  const concurrentResults = await concurrently(pool, params, path, params.concurrentRequests ?? concurrency * 10, concurrency);
  const concurrent = timings(concurrentResults, (performance.now() - started) / 1000);
  await pool.close();
  return { sequential, concurrent };
}

async function streams(params: SseLoadParams, url: URL): Promise<SseLoadResult> {
  const count = params.streams ?? 1000;
  const pool = new Pool(url.origin, { connections: count + 16, pipelining: 1, keepAliveTimeout: 60_000 });
  const path = url.pathname + url.search;
  const rampMs = params.rampMs ?? 2000;
  await markStart();
  const started = performance.now();
  let opened = 0;
  let open = 0;
  let maxOpen = 0;
  let allOpenMs = Number.NaN;
  const onFirstByte = (): void => {
    if (++opened === count) allOpenMs = performance.now() - started;
    maxOpen = Math.max(maxOpen, ++open);
  };
  const onEnd = (): void => void open--;
  const running: Array<Promise<OneStream>> = [];
  for (let index = 0; index < count; index++) {
    const due = started + (rampMs * index) / count;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    running.push(oneStream(pool, params, path, onFirstByte, onEnd));
  }
  const results = await Promise.all(running);
  const seconds = (performance.now() - started) / 1000;
  await pool.destroy();
  return { streams: { ...timings(results, seconds), opened, allOpenMs, maxOpen } };
}

void runGenerator(async () => {
  const params = loadParams<SseLoadParams>();
  const url = new URL(params.url);
  return params.mode === "streams" ? streams(params, url) : sse(params, url);
});
