// One measured run per call: a load child drives one target while /proc watches the process under
// test (CPU time, peak RSS, other load on the machine); each run becomes a RunRecord.
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { GatewayHandle } from "./gateway.js";
import type { GrpcLoadParams, GrpcLoadResult } from "./load-grpc.js";
import type { HttpLoadParams, HttpLoadResult } from "./load-http.js";
import type { SseLoadParams, SseLoadResult, StreamTimings } from "./load-sse.js";
import { cpuMicros, cpuReading, foreignCpuPercent, memoryKb, resetPeakRss, runLoadChild, sampleRss } from "./proc.js";
import type { RunRecord, ScenarioKey } from "./report.js";
import type { LatencySummary } from "./stats.js";
import { chatBody, type Settings } from "./settings.js";

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const log = (line: string): void => void process.stderr.write(`${line}\n`);
const mb = (kb: number | undefined): number => (kb ?? Number.NaN) / 1024;

/** An HTTP endpoint under test and the process whose CPU and memory it costs. */
export interface HttpTarget {
  name: string;
  pid: number;
  /** More gateway instances whose CPU counts as the target's (the cluster scenario). */
  morePids?: number[];
  /** A load balancer in front, whose CPU is counted apart (balancerCpuUsPerCall). */
  balancerPid?: number;
  url: string;
  headers: Record<string, string>;
}

/** CPU time of these processes together, in µs; undefined when one is gone. */
function cpuOf(pids: readonly number[]): number | undefined {
  let sum = 0;
  for (const pid of pids) {
    const us = cpuMicros(pid);
    if (us === undefined) return undefined;
    sum += us;
  }
  return sum;
}

/**
 * Runs one load child against one process, measuring that process's CPU and memory while it
 * measures, and the load child's own CPU (it shares the cores).
 */
export async function measure<T>(pid: number, script: string, params: unknown, timeoutMs: number, more: { pids?: number[]; balancerPid?: number } = {}) {
  const pids = [pid, ...(more.pids ?? [])];
  const balancer = more.balancerPid === undefined ? [] : [more.balancerPid];
  let cpuStart: number | undefined;
  let cpuEnd: number | undefined;
  let balancerStart: number | undefined;
  let balancerEnd: number | undefined;
  let loadCpuStart: number | undefined;
  let loadCpuEnd: number | undefined;
  let peakKb: number | undefined;
  let sampledKb = Number.NaN;
  let peakReset = false;
  let sampler: { stop(): number } | undefined;
  let machineStart: ReturnType<typeof cpuReading> | undefined;
  let foreignCpuPct = Number.NaN;
  const result = await runLoadChild<T>(path.join(benchDir, script), params, {
    onStart(loadPid) {
      peakReset = resetPeakRss(pid);
      cpuStart = cpuOf(pids);
      balancerStart = cpuOf(balancer);
      if (loadPid !== undefined) loadCpuStart = cpuMicros(loadPid);
      sampler = sampleRss(pid, 100);
      machineStart = cpuReading();
    },
    onEnd(loadPid) {
      cpuEnd = cpuOf(pids);
      balancerEnd = cpuOf(balancer);
      if (loadPid !== undefined) loadCpuEnd = cpuMicros(loadPid);
      if (machineStart) foreignCpuPct = foreignCpuPercent(machineStart, cpuReading());
      sampledKb = sampler?.stop() ?? Number.NaN;
      peakKb = memoryKb(pid)?.peak;
    },
  }, timeoutMs).finally(() => sampler?.stop());
  const cpuUs = cpuStart !== undefined && cpuEnd !== undefined ? cpuEnd - cpuStart : Number.NaN;
  const loadCpuUs = loadCpuStart !== undefined && loadCpuEnd !== undefined ? loadCpuEnd - loadCpuStart : Number.NaN;
  const balancerCpuUs = balancer.length > 0 && balancerStart !== undefined && balancerEnd !== undefined ? balancerEnd - balancerStart : undefined;
  const peakRssMb = peakReset ? mb(peakKb) : Math.max(mb(peakKb), mb(sampledKb));
  return { result, cpuUs, loadCpuUs, balancerCpuUs, peakRssMb, sampledRssMb: mb(sampledKb), foreignCpuPct };
}

function perCall(cpuUs: number, calls: number): number {
  return calls > 0 ? cpuUs / calls : Number.NaN;
}

type Measured<T> = Awaited<ReturnType<typeof measure<T>>>;

/** The record of a unary run; `answered` counts the calls the process under test answered. */
function unaryRecord(
  scenario: ScenarioKey,
  target: string,
  round: number,
  run: Measured<{ ok: number; seconds: number; latencyMs: LatencySummary }>,
  outcome: { failed: number; failure?: string; answered: number },
): RunRecord {
  const { result } = run;
  return {
    scenario,
    target,
    round,
    ok: result.ok,
    failed: outcome.failed,
    failure: outcome.failure,
    seconds: result.seconds,
    rps: result.ok / result.seconds,
    p50: result.latencyMs.p50,
    p99: result.latencyMs.p99,
    cpuUsPerCall: perCall(run.cpuUs, outcome.answered),
    loadCpuUsPerCall: perCall(run.loadCpuUs, outcome.answered),
    ...(run.balancerCpuUs !== undefined && { balancerCpuUsPerCall: perCall(run.balancerCpuUs, outcome.answered) }),
    peakRssMb: run.peakRssMb,
    sampledRssMb: run.sampledRssMb,
    foreignCpuPct: run.foreignCpuPct,
  };
}

function describe(record: RunRecord): string {
  const f = (value: number | undefined, digits: number): string => (typeof value === "number" && Number.isFinite(value) ? value.toFixed(digits) : "–");
  const common = `CPU ${f(record.cpuUsPerCall, 1)} µs/call, peak ${f(record.peakRssMb, 0)} MB`;
  const failed = record.failed ? `, ${record.failed} failed (${record.failure ?? "?"})` : "";
  if (record.scenario.startsWith("sse") || record.scenario === "streams") {
    return `${record.ok} ok, ${f(record.rps, 1)}/s, TTFB p50 ${f(record.ttfbP50, 2)} ms, TTLB p99 ${f(record.ttlbP99, 1)} ms, ${common}${failed}`;
  }
  return `${f(record.rps, 0)} req/s, p50 ${f(record.p50, 2)} ms, p99 ${f(record.p99, 2)} ms, ${common}${failed}`;
}

/** Runs the scenarios' measurements and collects their records and notes. */
export class Bench {
  readonly records: RunRecord[] = [];
  readonly notes: string[] = [];
  /** Targets that failed every call once: not run again. */
  private readonly broken = new Set<string>();

  constructor(private readonly settings: Settings) {}

  private record(record: RunRecord): void {
    this.records.push(record);
    log(`  [${record.scenario} round ${record.round}] ${record.target}: ${describe(record)}`);
    if (record.ok === 0) {
      this.broken.add(`${record.scenario}/${record.target}`);
      this.notes.push(`${record.target} failed every call in ${record.scenario} (${record.failure ?? "no detail"}); not run again in that scenario.`);
    }
  }

  private skip(scenario: ScenarioKey, target: string): boolean {
    return this.broken.has(`${scenario}/${target}`);
  }

  async http(scenario: ScenarioKey, round: number, target: HttpTarget, connections: number, body: string): Promise<void> {
    if (this.skip(scenario, target.name)) return;
    const { durationS, warmupS } = this.settings;
    const params: HttpLoadParams = { url: target.url, headers: target.headers, body, connections, durationS, warmupS };
    const timeoutMs = (durationS + warmupS) * 1000 + 30_000;
    const run = await measure<HttpLoadResult>(target.pid, "load-http.ts", params, timeoutMs, { pids: target.morePids, balancerPid: target.balancerPid });
    const failed = run.result.non2xx + run.result.errors;
    const failure = failed ? `status codes ${JSON.stringify(run.result.statusCodes)}, ${run.result.errors} errors` : undefined;
    this.record(unaryRecord(scenario, target.name, round, run, { failed, failure, answered: run.result.ok + run.result.non2xx }));
  }

  /** gRPC unary on `gateway`, recorded as `target`. */
  async grpc(round: number, gateway: GatewayHandle, target: string): Promise<void> {
    if (this.skip("grpc", target) || gateway.child.pid === undefined) return;
    const { durationS, warmupS, connections, grpcChannels } = this.settings;
    const params: GrpcLoadParams = {
      address: `127.0.0.1:${gateway.port}`,
      authorization: gateway.authorization,
      providerName: "bench",
      body: chatBody,
      concurrency: connections,
      channels: grpcChannels,
      durationS,
      warmupS,
    };
    const run = await measure<GrpcLoadResult>(gateway.child.pid, "load-grpc.ts", params, (durationS + warmupS) * 1000 + 40_000);
    const { errors, firstError } = run.result;
    this.record(unaryRecord("grpc", target, round, run, { failed: errors, failure: firstError, answered: run.result.ok + errors }));
  }

  async sse(round: number, target: HttpTarget): Promise<void> {
    if (this.skip("sse-seq", target.name)) return;
    const s = this.settings;
    const params: SseLoadParams = {
      mode: "sse",
      url: target.url,
      headers: target.headers,
      body: JSON.stringify({ ...chatBody, stream: true }),
      warmup: 10,
      sequential: s.sseSequential,
      concurrency: s.connections,
      concurrentRequests: s.sseConcurrentRequests,
      timeoutMs: 30_000,
    };
    const perStreamMs = s.providerLatencyMs + s.sseChunks * s.sseIntervalMs + 20;
    const timeoutMs = (s.sseSequential + 10 + s.sseConcurrentRequests) * perStreamMs * 3 + 60_000;
    const run = await measure<SseLoadResult>(target.pid, "load-sse.ts", params, timeoutMs);
    const sequential = run.result.sequential as StreamTimings;
    const concurrent = run.result.concurrent as StreamTimings;
    const cpuUsPerCall = perCall(run.cpuUs, sequential.count + concurrent.count);
    for (const [scenario, timings] of [["sse-seq", sequential], ["sse-conc", concurrent]] as const) {
      this.record(this.streamRecord(scenario, target.name, round, timings, cpuUsPerCall, run));
    }
  }

  async streams(round: number, target: HttpTarget): Promise<void> {
    if (this.skip("streams", target.name)) return;
    const s = this.settings;
    const params: SseLoadParams = {
      mode: "streams",
      url: target.url,
      headers: target.headers,
      body: JSON.stringify({ ...chatBody, stream: true }),
      streams: s.streams,
      rampMs: s.streamRampMs,
      timeoutMs: 60_000,
    };
    const timeoutMs = s.streamChunks * s.streamIntervalMs * 4 + s.streamRampMs + 90_000;
    const run = await measure<SseLoadResult>(target.pid, "load-sse.ts", params, timeoutMs);
    const timings = run.result.streams as StreamTimings & { opened: number; allOpenMs: number; maxOpen: number };
    this.record({
      ...this.streamRecord("streams", target.name, round, timings, perCall(run.cpuUs, timings.count), run),
      opened: timings.opened,
      allOpenMs: timings.allOpenMs,
      maxOpen: timings.maxOpen,
    });
  }

  private streamRecord(
    scenario: ScenarioKey,
    target: string,
    round: number,
    timings: StreamTimings,
    cpuUsPerCall: number,
    run: { peakRssMb: number; sampledRssMb: number; foreignCpuPct: number },
  ): RunRecord {
    return {
      scenario,
      target,
      round,
      ok: timings.ok,
      failed: timings.failed,
      failure: timings.firstFailure,
      seconds: timings.seconds,
      rps: timings.ok / timings.seconds,
      p50: timings.ttlbMs.p50,
      p99: timings.ttlbMs.p99,
      ttfbP50: timings.ttfbMs.p50,
      ttfbP99: timings.ttfbMs.p99,
      ttlbP50: timings.ttlbMs.p50,
      ttlbP99: timings.ttlbMs.p99,
      cpuUsPerCall,
      peakRssMb: run.peakRssMb,
      sampledRssMb: run.sampledRssMb,
      foreignCpuPct: run.foreignCpuPct,
    };
  }
}
