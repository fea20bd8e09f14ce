// `npm run bench -- --fresh`: the feature ratios (as shipped ÷ all off, auth only ÷ all off) of
// unary CPU per call (REST, or each of BENCH_FRESH_PROTOCOLS), each round on fresh processes. One
// gateway process keeps the JIT and heap state it happened to start with, and two processes of the same build differ by up to a
// third for as long as they run; the timed rounds of `npm run bench` reuse one process per target,
// so their ratios carry that luck. Here every round starts each target afresh, pinned to core 0
// (all its threads) with the provider and the load generator on core 1, and the ratios are medians
// of per-round ratios over many rounds, with a bootstrap 95% interval.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { authenticates, benchKey, benchTargets, startBenchTarget, type BenchTarget, type GatewayOptions } from "./gateway.js";
import type { InstructionOptions } from "./instructions.js";
import { PassthroughService } from "../../src/gen/smarter/prompt/v1/passthrough_pb.js";
import type { GrpcLoadParams, GrpcLoadResult } from "./load-grpc.js";
import type { HttpLoadParams, HttpLoadResult } from "./load-http.js";
import { startPortPrinter, stopChild } from "./proc.js";
import { measure } from "./scenarios.js";
import { chatBody } from "./settings.js";
import { median } from "./stats.js";

const CONCURRENCY = 32;

export async function runFresh({ root, benchDir, providerArgs, build, machine }: InstructionOptions): Promise<void> {
  const rounds = Number(process.env.BENCH_FRESH_ROUNDS ?? 12);
  const warmupS = Number(process.env.BENCH_WARMUP ?? 2);
  const durationS = Number(process.env.BENCH_DURATION ?? 3);
  if (![rounds, warmupS, durationS].every((n) => Number.isInteger(n) && n > 0)) throw new Error("BENCH_FRESH_ROUNDS, BENCH_WARMUP and BENCH_DURATION: positive integers");
  const pinned = os.cpus().length >= 2 && hasTaskset();
  const buildError = await build?.();
  if (buildError) console.error(`npm run build failed; measuring whatever dist/ holds:\n${buildError}`);
  const workDir = mkdtempSync(path.join(os.tmpdir(), "passthrough-fresh-"));
  process.once("exit", () => rmSync(workDir, { recursive: true, force: true }));
  // On core 1 this process, and so every child it starts (the provider, the load generator, the CLI); each gateway then moves to core 0.
  if (pinned) pin(process.pid, 1);
  const provider = await startPortPrinter([...providerArgs, "--port", "0", "--latency-ms", "0"], { name: "provider" });
  const options: GatewayOptions = { root, workDir, providers: [{ name: "bench", port: provider.port }], startTimeoutMs: 20_000 };
  // BENCH_FRESH_TARGETS=off,auth (say) leaves the shipped gateway out of the rounds.
  const targets = benchTargets("BENCH_FRESH_TARGETS");
  // BENCH_FRESH_PROTOCOLS=rest,grpc,connect measures each protocol on processes of its own; REST alone by default.
  const protocols = (process.env.BENCH_FRESH_PROTOCOLS ?? "rest").split(",").map((name) => name.trim());
  if (protocols.length === 0 || !protocols.every((name): name is Protocol => (PROTOCOLS as readonly string[]).includes(name))) {
    throw new Error("BENCH_FRESH_PROTOCOLS: a list of rest, grpc and connect");
  }
  const perCall: Partial<Record<Protocol, Record<BenchTarget, number[]>>> = {};
  for (const protocol of protocols) perCall[protocol] = Object.fromEntries(targets.map((target) => [target, [] as number[]])) as Record<BenchTarget, number[]>;
  let authorization: string | undefined;
  try {
    authorization = await benchKey(targets, options);
    for (let round = 1; round <= rounds; round++) {
      const order = round % 2 === 1 ? [...targets] : [...targets].reverse();
      for (const protocol of protocols) {
        for (const target of order) {
          const gateway = await startBenchTarget(target, options);
          authorization = gateway.authorization ?? authorization;
          const keyed = authenticates(target);
          try {
            const pid = gateway.child.pid!;
            if (pinned) pin(pid, 0);
            const calls = await load(protocol, pid, gateway.port, keyed ? authorization : undefined, { durationS, warmupS });
            perCall[protocol]![target].push(calls);
            console.error(`round ${round}/${rounds}, ${protocol}, ${target}: ${calls.toFixed(1)} µs/call`);
          } finally {
            await stopChild(gateway.child, 10_000);
          }
        }
      }
    }
  } finally {
    await stopChild(provider.child);
  }
  const report = reportOf(perCall, targets, { rounds, warmupS, durationS, pinned }, machine);
  const suffix = [process.env.BENCH_FRESH_TARGETS, process.env.BENCH_FRESH_PROTOCOLS].filter(Boolean).flatMap((list) => list!.split(",").map((name) => name.trim()));
  const file = path.join(benchDir, "results", suffix.length > 0 ? `fresh-${suffix.join("-")}.md` : "fresh.md");
  writeFileSync(file, report);
  console.log(report);
  console.error(`written: ${path.relative(root, file)}`);
}

const PROTOCOLS = ["rest", "grpc", "connect"] as const;
type Protocol = (typeof PROTOCOLS)[number];

/** Gateway CPU µs per call answered: REST and Connect JSON from autocannon, gRPC from grpc-js, at concurrency 32. */
async function load(protocol: Protocol, pid: number, port: number, authorization: string | undefined, time: { durationS: number; warmupS: number }): Promise<number> {
  const timeoutMs = (time.warmupS + time.durationS) * 1000 + 40_000;
  const headers = { "content-type": "application/json", ...(authorization ? { authorization } : {}) };
  let answered: number;
  let cpu: number;
  if (protocol === "grpc") {
    const params: GrpcLoadParams = { address: `127.0.0.1:${port}`, authorization, providerName: "bench", body: chatBody, concurrency: CONCURRENCY, channels: 1, ...time };
    const { result, cpuUs } = await measure<GrpcLoadResult>(pid, "load-grpc.ts", params, timeoutMs);
    [answered, cpu] = [result.ok, cpuUs];
  } else {
    const params: HttpLoadParams =
      protocol === "rest"
        ? { url: `http://127.0.0.1:${port}/api/v1/prompts/passthrough/bench/`, headers, body: JSON.stringify(chatBody), connections: CONCURRENCY, ...time }
        : {
            url: `http://127.0.0.1:${port}/${PassthroughService.typeName}/Passthrough`,
            headers: { ...headers, "connect-protocol-version": "1" },
            body: JSON.stringify({ providerName: "bench", body: chatBody }),
            connections: CONCURRENCY,
            ...time,
          };
    const { result, cpuUs } = await measure<HttpLoadResult>(pid, "load-http.ts", params, timeoutMs);
    [answered, cpu] = [result.ok, cpuUs];
  }
  if (!Number.isFinite(cpu) || answered === 0) throw new Error(`${protocol}: no CPU reading or no call answered`);
  return cpu / answered;
}

function hasTaskset(): boolean {
  try {
    execFileSync("taskset", ["-V"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Every thread of `pid` on `core`; threads and children it starts later inherit it. */
function pin(pid: number, core: number): void {
  execFileSync("taskset", ["-a", "-pc", String(core), String(pid)], { stdio: "ignore" });
}

/** The median of per-round ratios and a bootstrap 95% interval of it (rounds resampled, pairs kept). */
function ratioOf(a: readonly number[], b: readonly number[]): { median: number; low: number; high: number } {
  const ratios = a.map((value, i) => value / b[i]);
  let seed = 1;
  // A fixed-seed generator, so that a report can be recomputed from its figures.
  const random = () => ((seed = (seed * 48271) % 2147483647) / 2147483647);
  const medians = Array.from({ length: 2000 }, () => median(ratios.map(() => ratios[Math.floor(random() * ratios.length)]))).sort((x, y) => x - y);
  return { median: median(ratios), low: medians[Math.floor(medians.length * 0.025)], high: medians[Math.ceil(medians.length * 0.975) - 1] };
}

function reportOf(perCall: Partial<Record<string, Record<BenchTarget, number[]>>>, targets: readonly BenchTarget[], run: { rounds: number; warmupS: number; durationS: number; pinned: boolean }, machine: string): string {
  const row = (values: number[], off: number[], target: BenchTarget) => {
    const ratio = target === "gateway, all off" ? undefined : ratioOf(values, off);
    const spread = `${Math.min(...values).toFixed(0)}–${Math.max(...values).toFixed(0)}`;
    return `| ${target} | ${median(values).toFixed(1)} | ${spread} | ${ratio ? `${ratio.median.toFixed(3)}× (${ratio.low.toFixed(3)}–${ratio.high.toFixed(3)})` : "–"} |`;
  };
  const names: Record<string, string> = { rest: "REST", grpc: "gRPC", connect: "Connect JSON" };
  const protocols = Object.keys(perCall);
  return [
    `## ${protocols.map((protocol) => names[protocol]).join(", ")} CPU per call, fresh processes`,
    "",
    machine,
    "",
    `${run.rounds} rounds; in each, for each protocol, every target started afresh (odd rounds in the order below, even ones reversed), ${run.warmupS} s of warm-up, then ${run.durationS} s measured at concurrency ${CONCURRENCY} (REST and Connect from autocannon, load-http.ts; gRPC from grpc-js on one channel, load-grpc.ts); ${run.pinned ? "the gateway pinned to core 0, the provider and the load generator to core 1" : "not pinned (taskset missing or one core)"}. CPU of the gateway process per call answered; ratios are medians of per-round ratios to the all-off gateway, with a bootstrap 95% interval.`,
    "",
    ...protocols.flatMap((protocol) => [
      ...(protocols.length > 1 ? [`### ${names[protocol]}`, ""] : []),
      "| target | CPU µs/call (median) | rounds' range | ÷ all off (95% interval) |",
      "| --- | --- | --- | --- |",
      ...targets.map((target) => row(perCall[protocol]![target], perCall[protocol]!["gateway, all off"], target)),
      "",
    ]),
  ].join("\n");
}
