// Soak load generator (its own process): the mix of soak-mix.ts at a fixed total rate (open loop,
// each kind bounded in flight) for a fixed time, every outcome classified, then a bounded drain.
import * as grpc from "@grpc/grpc-js";
import { Pool } from "undici";
import { loadParams, markStart, runGenerator } from "./load-ipc.js";
import { soakMix, type CallKind } from "./soak-mix.js";
import type { Observation, SoakClients } from "./soak-calls.js";
import { summarize, type LatencySummary } from "./stats.js";

export interface SoakLoadParams {
  port: number;
  authorization?: string;
  durationS: number;
  /** Calls per second in all; the mix's shares are scaled to it. */
  ratePerS: number;
  /** Width of the per-window counts, in seconds (the RSS sampling interval). */
  windowS: number;
  callTimeoutMs: number;
  /** How long in-flight calls may take to finish once the load stops. */
  drainMs: number;
  /** Only these kinds; empty: all. */
  only: string[];
}

export interface KindResult {
  name: string;
  protocol: CallKind["protocol"];
  what: string;
  expected: string[];
  abortsUpstream: boolean;
  perSecond: number;
  sent: number;
  /** Due while the kind was at its in-flight cap: not sent. */
  shed: number;
  /** Still running when the drain ended. */
  unfinished: number;
  outcomes: Record<string, number>;
  violations: Record<string, number>;
  /** Latency of the calls that ended as expected. */
  latencyMs: LatencySummary;
}

export interface SoakWindow {
  /** Seconds since the load started, at the window's start. */
  startS: number;
  completed: number;
  undocumented: number;
  violations: number;
  /** REST unary latency in the window, the steadiest series of the mix. */
  restUnaryMs: LatencySummary;
}

export interface SoakExample {
  kind: string;
  outcome: string;
  atS: number;
  detail?: string;
}

export interface SoakLoadResult {
  seconds: number;
  kinds: KindResult[];
  windows: SoakWindow[];
  /** The first few calls of each unexpected outcome, and of each contract violation. */
  examples: SoakExample[];
  violationExamples: SoakExample[];
}

const TICK_MS = 20;
const EXAMPLES_PER_LABEL = 3;

async function generate(): Promise<SoakLoadResult> {
  const params = loadParams<SoakLoadParams>();
  const mix = soakMix().filter((kind) => params.only.length === 0 || params.only.includes(kind.name));
  const unknown = params.only.filter((name) => !mix.some((kind) => kind.name === name));
  if (unknown.length) throw new Error(`BENCH_SOAK_ONLY: unknown kind(s) ${unknown.join(", ")}; see soak-mix.ts`);
  const total = mix.reduce((sum, kind) => sum + kind.perSecond, 0);
  const scale = params.ratePerS / total;

  const jsonHeaders: Record<string, string> = { "content-type": "application/json", ...(params.authorization ? { authorization: params.authorization } : {}) };
  const metadata = new grpc.Metadata();
  if (params.authorization) metadata.set("authorization", params.authorization);
  const clients: SoakClients = {
    // More connections than the HTTP kinds' in-flight caps add up to: no call waits for one.
    pool: new Pool(`http://127.0.0.1:${params.port}`, { connections: 256, pipelining: 1, keepAliveTimeout: 30_000 }),
    grpc: new grpc.Client(`127.0.0.1:${params.port}`, grpc.credentials.createInsecure(), { "grpc.max_receive_message_length": 64 << 20 }),
    jsonHeaders,
    metadata,
    port: params.port,
    callTimeoutMs: params.callTimeoutMs,
  };

  const state = mix.map((kind) => ({
    kind,
    credit: Math.random(), // spreads the rare kinds' first calls
    inFlight: 0,
    sent: 0,
    shed: 0,
    outcomes: {} as Record<string, number>,
    violations: {} as Record<string, number>,
    latencies: [] as number[],
  }));
  const windows: Array<{ completed: number; undocumented: number; violations: number; restUnary: number[] }> = [];
  const examples: SoakExample[] = [];
  const violationExamples: SoakExample[] = [];
  const seen = new Map<string, number>();
  const keep = (list: SoakExample[], example: SoakExample): void => {
    const key = `${list === examples ? "o" : "v"}|${example.kind}|${example.outcome}`;
    const count = seen.get(key) ?? 0;
    if (count < EXAMPLES_PER_LABEL) list.push(example);
    seen.set(key, count + 1);
  };

  // The channel connects before the clock starts, so that the first calls do not wait for it.
  await new Promise<void>((resolve, reject) => clients.grpc.waitForReady(Date.now() + 10_000, (error) => (error ? reject(error) : resolve())));
  await markStart();
  const started = performance.now();
  const elapsedS = (): number => (performance.now() - started) / 1000;
  const windowAt = (seconds: number) => {
    const index = Math.floor(seconds / params.windowS);
    while (windows.length <= index) windows.push({ completed: 0, undocumented: 0, violations: 0, restUnary: [] });
    return windows[index];
  };
  const running = new Set<Promise<void>>();

  const launch = (entry: (typeof state)[number]): void => {
    entry.sent++;
    entry.inFlight++;
    const callStarted = performance.now();
    const task = entry.kind
      .run(clients)
      .catch((error: unknown): Observation => ({ outcome: "load generator error", detail: String(error) }))
      .then((observation) => {
        entry.inFlight--;
        const endedS = elapsedS();
        const window = windowAt(endedS);
        const ms = performance.now() - callStarted;
        entry.outcomes[observation.outcome] = (entry.outcomes[observation.outcome] ?? 0) + 1;
        window.completed++;
        if (entry.kind.expected.includes(observation.outcome)) {
          entry.latencies.push(ms);
          if (entry.kind.name === "rest-unary") window.restUnary.push(ms);
        } else {
          window.undocumented++;
          keep(examples, { kind: entry.kind.name, outcome: observation.outcome, atS: endedS, detail: observation.detail });
        }
        for (const violation of observation.violations ?? []) {
          entry.violations[violation] = (entry.violations[violation] ?? 0) + 1;
          window.violations++;
          keep(violationExamples, { kind: entry.kind.name, outcome: violation, atS: endedS, detail: observation.detail });
        }
      });
    running.add(task);
    void task.finally(() => running.delete(task));
  };

  let last = performance.now();
  while (elapsedS() < params.durationS) {
    await new Promise((resolve) => setTimeout(resolve, TICK_MS));
    const now = performance.now();
    const dt = Math.min(1, (now - last) / 1000);
    last = now;
    for (const entry of state) {
      entry.credit += entry.kind.perSecond * scale * dt;
      while (entry.credit >= 1) {
        entry.credit--;
        if (entry.inFlight < entry.kind.maxInFlight) launch(entry);
        else entry.shed++;
      }
    }
  }
  const seconds = elapsedS();
  await Promise.race([Promise.all(running), new Promise((resolve) => setTimeout(resolve, params.drainMs))]);
  clients.grpc.close();
  await clients.pool.destroy();

  return {
    seconds,
    kinds: state.map((entry) => ({
      name: entry.kind.name,
      protocol: entry.kind.protocol,
      what: entry.kind.what,
      expected: entry.kind.expected,
      abortsUpstream: entry.kind.abortsUpstream ?? false,
      perSecond: entry.kind.perSecond * scale,
      sent: entry.sent,
      shed: entry.shed,
      unfinished: entry.inFlight,
      outcomes: entry.outcomes,
      violations: entry.violations,
      latencyMs: summarize(entry.latencies),
    })),
    windows: windows.map((window, index) => ({
      startS: index * params.windowS,
      completed: window.completed,
      undocumented: window.undocumented,
      violations: window.violations,
      restUnaryMs: summarize(window.restUnary),
    })),
    examples,
    violationExamples,
  };
}

void runGenerator(generate);
