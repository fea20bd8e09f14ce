// Turns the benchmark's per-run records into medians, one markdown table per scenario, and the
// PASS/MISS verdicts of the targets.
import { median, spread } from "./stats.js";

export type ScenarioKey = "rest" | "rest-c1" | "grpc" | "connect" | "sse-seq" | "sse-conc" | "streams";
export const DIRECT = "direct";
export const BARE = "bare proxy";
export const GATEWAY = "gateway";
export const GATEWAY_GRPC = "gateway gRPC";
export const GATEWAY_CONNECT = "gateway Connect";

/** One measured run of one target in one round. Latencies in ms; for SSE, p50/p99 are TTLB. */
export interface RunRecord {
  scenario: ScenarioKey;
  target: string;
  round: number;
  ok: number;
  failed: number;
  failure?: string;
  seconds: number;
  rps: number;
  p50: number;
  p99: number;
  ttfbP50?: number;
  ttfbP99?: number;
  ttlbP50?: number;
  ttlbP99?: number;
  opened?: number;
  allOpenMs?: number;
  /** Streams open at the same time (first byte received, not yet ended), at most. */
  maxOpen?: number;
  cpuUsPerCall: number;
  /** The load generator's CPU time per call (unary scenarios): it competes for the same cores. */
  loadCpuUsPerCall?: number;
  /** VmHWM after a reset at the start of the run (the true peak); sampledRssMb is the 100 ms poller's max. */
  peakRssMb: number;
  sampledRssMb: number;
  /** Share of all cores busy with work outside the benchmark's processes during the run. */
  foreignCpuPct: number;
}

type Metric = Exclude<{ [K in keyof RunRecord]: RunRecord[K] extends number | undefined ? K : never }[keyof RunRecord], undefined>;

export interface Verdict {
  target: string;
  status: "PASS" | "MISS" | "N/A";
  figure: string;
}

export class Results {
  constructor(readonly records: RunRecord[]) {}

  runs(scenario: ScenarioKey, target: string): RunRecord[] {
    return this.records.filter((record) => record.scenario === scenario && record.target === target);
  }

  has(scenario: ScenarioKey, target: string): boolean {
    return this.runs(scenario, target).some((record) => record.ok > 0);
  }

  median(scenario: ScenarioKey, target: string, metric: Metric): number {
    return median(this.runs(scenario, target).map((record) => record[metric]));
  }

  spread(scenario: ScenarioKey, target: string, metric: Metric): number {
    return spread(this.runs(scenario, target).map((record) => record[metric]));
  }

  /** Median over rounds of a/b, pairing runs of the same round (interleaved, so drift cancels). */
  ratio(a: [ScenarioKey, string], b: [ScenarioKey, string], metric: Metric): number {
    const bByRound = new Map(this.runs(...b).map((record) => [record.round, record[metric]]));
    return median(
      this.runs(...a).map((record) => {
        const reference = bByRound.get(record.round);
        return reference ? (record[metric] ?? Number.NaN) / reference : Number.NaN;
      }),
    );
  }

  /** Median over rounds of a - b. */
  difference(a: [ScenarioKey, string], b: [ScenarioKey, string], metric: Metric): number {
    const bByRound = new Map(this.runs(...b).map((record) => [record.round, record[metric]]));
    return median(
      this.runs(...a).map((record) => {
        const reference = bByRound.get(record.round);
        return reference === undefined ? Number.NaN : (record[metric] ?? Number.NaN) - reference;
      }),
    );
  }

  failures(scenario: ScenarioKey, target: string): string {
    const runs = this.runs(scenario, target);
    const failed = runs.reduce((total, record) => total + record.failed, 0);
    const calls = runs.reduce((total, record) => total + record.ok + record.failed, 0);
    return failed ? `${failed}/${calls}` : "0";
  }
}

const fixed = (value: number, digits: number): string => (Number.isFinite(value) ? value.toFixed(digits) : "–");
const ms = (value: number): string => fixed(value, value < 10 ? 2 : 1);
const times = (value: number): string => (Number.isFinite(value) ? `${value.toFixed(2)}×` : "–");
const plusMs = (value: number): string => (Number.isFinite(value) ? `${value >= 0 ? "+" : ""}${value.toFixed(2)} ms` : "–");
const percent = (value: number): string => (Number.isFinite(value) ? `${(value * 100).toFixed(0)}%` : "–");

function table(title: string, note: string, header: string[], rows: string[][]): string {
  if (rows.length === 0) return "";
  const line = (cells: string[]): string => `| ${cells.join(" | ")} |`;
  return [`### ${title}`, "", note, "", line(header), line(header.map(() => "---")), ...rows.map(line), ""].join("\n");
}

function unaryTable(results: Results, scenario: ScenarioKey, title: string, note: string, references: Array<[ScenarioKey, string, string]>): string {
  const withGatewayRest = scenario === "grpc" || scenario === "connect";
  const header = ["target", "req/s", "p50 ms", "p99 ms", "CPU µs/call", "load gen CPU µs/call", "peak RSS MB", "vs direct", "vs bare", ...(withGatewayRest ? ["vs gateway REST"] : []), "failed", "req/s spread"];
  const rows = references
    .filter(([from, target]) => results.runs(from, target).length > 0)
    .map(([from, target, label]) => [
      label,
      fixed(results.median(from, target, "rps"), 0),
      ms(results.median(from, target, "p50")),
      ms(results.median(from, target, "p99")),
      fixed(results.median(from, target, "cpuUsPerCall"), 1),
      fixed(results.median(from, target, "loadCpuUsPerCall"), 1),
      fixed(results.median(from, target, "peakRssMb"), 0),
      times(results.ratio([from, target], [from === "rest-c1" ? "rest-c1" : "rest", DIRECT], "rps")),
      times(results.ratio([from, target], [from === "rest-c1" ? "rest-c1" : "rest", BARE], "rps")),
      ...(withGatewayRest ? [times(results.ratio([from, target], ["rest", GATEWAY], "rps"))] : []),
      results.failures(from, target),
      percent(results.spread(from, target, "rps")),
    ]);
  return table(title, note, header, rows);
}

function sseTable(results: Results, concurrency: number): string {
  const header = ["target", "mode", "streams/s", "TTFB p50 ms", "TTFB p99 ms", "TTLB p50 ms", "TTLB p99 ms", "CPU µs/stream", "peak RSS MB", "TTFB p50 vs direct", "TTFB p50 vs bare", "failed"];
  const rows: string[][] = [];
  for (const [scenario, mode] of [["sse-seq", "sequential (c=1)"], ["sse-conc", `concurrent (c=${concurrency})`]] as const) {
    for (const target of [DIRECT, BARE, GATEWAY]) {
      if (results.runs(scenario, target).length === 0) continue;
      rows.push([
        target,
        mode,
        fixed(results.median(scenario, target, "rps"), 1),
        ms(results.median(scenario, target, "ttfbP50")),
        ms(results.median(scenario, target, "ttfbP99")),
        ms(results.median(scenario, target, "ttlbP50")),
        ms(results.median(scenario, target, "ttlbP99")),
        fixed(results.median(scenario, target, "cpuUsPerCall"), 1),
        fixed(results.median(scenario, target, "peakRssMb"), 0),
        plusMs(results.difference([scenario, target], [scenario, DIRECT], "ttfbP50")),
        plusMs(results.difference([scenario, target], [scenario, BARE], "ttfbP50")),
        results.failures(scenario, target),
      ]);
    }
  }
  return table(
    "REST SSE stream",
    "Time to first byte (the first event) and to last byte (after `data: [DONE]`), per stream; CPU and peak RSS cover both modes of the run. Differences are medians over rounds of the per-round difference.",
    header,
    rows,
  );
}

function streamsTable(results: Results, count: number): string {
  const header = ["target", "max open at once", "completed", "all open after ms", "TTFB p50 ms", "TTFB p99 ms", "TTLB p99 ms", "CPU µs/stream", "peak RSS MB (VmHWM)", "max sampled RSS MB", "RSS vs direct", "RSS vs bare"];
  const rows = [DIRECT, BARE, GATEWAY]
    .filter((target) => results.runs("streams", target).length > 0)
    .map((target) => [
      target,
      `${fixed(results.median("streams", target, "maxOpen"), 0)}/${count}`,
      `${fixed(results.median("streams", target, "ok"), 0)}/${count}`,
      fixed(results.median("streams", target, "allOpenMs"), 0),
      ms(results.median("streams", target, "ttfbP50")),
      ms(results.median("streams", target, "ttfbP99")),
      ms(results.median("streams", target, "ttlbP99")),
      fixed(results.median("streams", target, "cpuUsPerCall"), 1),
      fixed(results.median("streams", target, "peakRssMb"), 0),
      fixed(results.median("streams", target, "sampledRssMb"), 0),
      times(results.ratio(["streams", target], ["streams", DIRECT], "peakRssMb")),
      times(results.ratio(["streams", target], ["streams", BARE], "peakRssMb")),
    ]);
  return table(
    `${count.toLocaleString("en-US")} concurrent open streams`,
    "All streams started over the ramp and held until the provider ends them; \"max open at once\" counts streams that had their first byte and had not ended. The RSS is the process under test's (the provider itself for direct).",
    header,
    rows,
  );
}

export function tables(results: Results, settings: { connections: number; grpcChannels: number; streams: number }): string {
  const c = settings.connections;
  const refs = (extra: [ScenarioKey, string, string]): Array<[ScenarioKey, string, string]> => [
    ["rest", DIRECT, "direct (REST, ref.)"],
    ["rest", BARE, "bare proxy (REST, ref.)"],
    ["rest", GATEWAY, "gateway REST (ref.)"],
    extra,
  ];
  return [
    unaryTable(results, "rest", `REST unary (c=${c})`, "`POST /api/v1/prompts/passthrough/bench/` on the gateway; `POST /v1/chat/completions` direct and through the bare proxy.", [
      ["rest", DIRECT, DIRECT],
      ["rest", BARE, BARE],
      ["rest", GATEWAY, GATEWAY],
    ]),
    unaryTable(results, "rest-c1", "REST unary latency at concurrency 1", "Added latency is the gateway's p99 minus direct's p99, same round.", [
      ["rest-c1", DIRECT, DIRECT],
      ["rest-c1", BARE, BARE],
      ["rest-c1", GATEWAY, GATEWAY],
    ]),
    unaryTable(results, "grpc", `gRPC unary (${c} outstanding calls, ${settings.grpcChannels} channel(s))`, "There is no gRPC provider to call directly: the REST rows of the same rounds are the references.", refs(["grpc", GATEWAY_GRPC, GATEWAY_GRPC])),
    unaryTable(results, "connect", `Connect JSON unary (c=${c})`, "`POST /smarter.prompt.v1.PassthroughService/Passthrough`, `application/json`; the REST rows of the same rounds are the references.", refs(["connect", GATEWAY_CONNECT, GATEWAY_CONNECT])),
    sseTable(results, c),
    streamsTable(results, settings.streams),
  ]
    .filter(Boolean)
    .join("\n");
}

export function verdicts(results: Results, settings: { streams: number }): Verdict[] {
  const verdict = (target: string, available: boolean, pass: boolean, figure: string): Verdict => ({
    target,
    status: available ? (pass ? "PASS" : "MISS") : "N/A",
    figure: available ? figure : "not measured",
  });
  const gatewayRest = results.has("rest", GATEWAY);
  const restVsBare = results.ratio(["rest", GATEWAY], ["rest", BARE], "rps");
  const cpu = results.median("rest", GATEWAY, "cpuUsPerCall");
  const bareCpu = results.median("rest", BARE, "cpuUsPerCall");
  const addedP99 = results.difference(["rest-c1", GATEWAY], ["rest-c1", DIRECT], "p99");
  const bareAddedP99 = results.difference(["rest-c1", BARE], ["rest-c1", DIRECT], "p99");
  const grpcCpu = results.median("grpc", GATEWAY_GRPC, "cpuUsPerCall");
  const grpcVsRest = results.ratio(["grpc", GATEWAY_GRPC], ["rest", GATEWAY], "rps");
  const grpcLoadCpu = results.median("grpc", GATEWAY_GRPC, "loadCpuUsPerCall");
  const restLoadCpu = results.median("rest", GATEWAY, "loadCpuUsPerCall");
  const connectVsRest = results.ratio(["connect", GATEWAY_CONNECT], ["rest", GATEWAY], "rps");
  const ttfbVsBare = results.difference(["sse-seq", GATEWAY], ["sse-seq", BARE], "ttfbP50");
  const ttfbP99VsBare = results.difference(["sse-seq", GATEWAY], ["sse-seq", BARE], "ttfbP99");
  const streamsRss = results.median("streams", GATEWAY, "peakRssMb");
  const streamsDone = results.median("streams", GATEWAY, "ok");
  // Only a valid figure when every stream was open at the same time.
  const maxOpen = results.median("streams", GATEWAY, "maxOpen");
  const allAtOnce = maxOpen === settings.streams;
  return [
    verdict("REST unary ≥ 50% of the bare proxy's req/s", gatewayRest && results.has("rest", BARE), restVsBare >= 0.5, `${percent(restVsBare)} of bare`),
    verdict("REST unary gateway CPU per call ≤ ~80 µs", gatewayRest, cpu <= 80, `${fixed(cpu, 1)} µs/call (bare proxy: ${fixed(bareCpu, 1)})`),
    // The 80 µs was twice its bare proxy's 40 µs: the same bound, relative to this machine's floor.
    verdict("REST unary gateway CPU per call ≤ 2× the bare proxy's", gatewayRest && results.has("rest", BARE), cpu <= 2 * bareCpu, `${fixed(cpu / bareCpu, 2)}× the bare proxy's`),
    verdict("p99 added latency at c=1 < 1 ms (gateway p99 − direct p99)", results.has("rest-c1", GATEWAY) && results.has("rest-c1", DIRECT), addedP99 < 1, `${plusMs(addedP99)} (bare proxy: ${plusMs(bareAddedP99)})`),
    verdict("gRPC unary ≥ half the REST req/s", results.has("grpc", GATEWAY_GRPC) && gatewayRest, grpcVsRest >= 0.5, `${percent(grpcVsRest)} of gateway REST; the load generator's CPU per call: ${fixed(grpcLoadCpu, 0)} µs (grpc-js) against ${fixed(restLoadCpu, 0)} µs (autocannon)`),
    // req/s on 2 shared cores also measures the load generator (grpc-js costs more per call than autocannon).
    verdict("gRPC unary gateway CPU per call ≤ 2× REST's", results.has("grpc", GATEWAY_GRPC) && gatewayRest, grpcCpu <= 2 * cpu, `${fixed(grpcCpu, 1)} µs/call, ${fixed(grpcCpu / cpu, 2)}× REST's`),
    verdict("Connect unary ≥ half the REST req/s", results.has("connect", GATEWAY_CONNECT) && gatewayRest, connectVsRest >= 0.5, `${percent(connectVsRest)} of gateway REST`),
    verdict("SSE time to first byte within 1 ms of the bare proxy's (p50, c=1)", results.has("sse-seq", GATEWAY) && results.has("sse-seq", BARE), ttfbVsBare <= 1, `${plusMs(ttfbVsBare)} (p99 ${plusMs(ttfbP99VsBare)})`),
    verdict(
      `${settings.streams.toLocaleString("en-US")} concurrent open streams: gateway peak RSS < 250 MB (all completed)`,
      results.runs("streams", GATEWAY).length > 0,
      streamsRss < 250 && streamsDone === settings.streams && allAtOnce,
      `${fixed(streamsRss, 0)} MB, ${fixed(streamsDone, 0)}/${settings.streams} completed, at most ${fixed(maxOpen, 0)} open at once${allAtOnce ? "" : " (so not a figure for all of them)"}`,
    ),
  ];
}

export function verdictTable(list: Verdict[]): string {
  return ["### Targets", "", "| target | result | figure |", "| --- | --- | --- |", ...list.map((item) => `| ${item.target} | ${item.status} | ${item.figure} |`), ""].join("\n");
}
