// `npm run bench -- --fresh`: the feature ratios (as shipped ÷ all off, auth only ÷ all off) of
// REST unary CPU per call, each round on fresh processes. One gateway process keeps the JIT and
// heap state it happened to start with, and two processes of the same build differ by up to a
// third for as long as they run; the timed rounds of `npm run bench` reuse one process per target,
// so their ratios carry that luck. Here every round starts each target afresh, pinned to core 0
// (all its threads) with the provider and autocannon on core 1, and the ratios are medians of
// per-round ratios over many rounds, with a bootstrap 95% interval.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { startGateway, startGatewayOff, type GatewayHandle, type GatewayOptions } from "./gateway.js";
import { cpuMicros, startPortPrinter, stopChild } from "./proc.js";
import { chatBody } from "./settings.js";
import { median } from "./stats.js";

export interface FreshOptions {
  root: string;
  benchDir: string;
  providerArgs: string[];
  build: (() => Promise<string | undefined>) | undefined;
  machine: string;
}

const CONCURRENCY = 32;
const TARGETS = ["gateway", "gateway, all off", "gateway, auth only"] as const;
type Target = (typeof TARGETS)[number];

export async function runFresh({ root, benchDir, providerArgs, build, machine }: FreshOptions): Promise<void> {
  const rounds = Number(process.env.BENCH_FRESH_ROUNDS ?? 12);
  const warmupS = Number(process.env.BENCH_WARMUP ?? 2);
  const durationS = Number(process.env.BENCH_DURATION ?? 3);
  if (![rounds, warmupS, durationS].every((n) => Number.isInteger(n) && n > 0)) throw new Error("BENCH_FRESH_ROUNDS, BENCH_WARMUP and BENCH_DURATION: positive integers");
  const pinned = os.cpus().length >= 2 && hasTaskset();
  const buildError = await build?.();
  if (buildError) console.error(`npm run build failed; measuring whatever dist/ holds:\n${buildError}`);
  const workDir = mkdtempSync(path.join(os.tmpdir(), "passthrough-fresh-"));
  process.once("exit", () => rmSync(workDir, { recursive: true, force: true }));
  const provider = await startPortPrinter([...providerArgs, "--port", "0", "--latency-ms", "0"], { name: "provider" });
  if (pinned) pin(provider.child.pid!, 1);
  const options: GatewayOptions = { root, workDir, providers: [{ name: "bench", port: provider.port }], startTimeoutMs: 20_000 };
  const start: Record<Target, () => Promise<GatewayHandle>> = {
    gateway: () => startGateway(options),
    "gateway, all off": () => startGatewayOff(options),
    "gateway, auth only": () => startGatewayOff(options, true),
  };
  // BENCH_FRESH_TARGETS=off,auth (say) leaves the shipped gateway out of the rounds; the all-off one is always in, as the baseline.
  const names: Record<string, Target> = { shipped: "gateway", off: "gateway, all off", auth: "gateway, auth only" };
  const asked = (process.env.BENCH_FRESH_TARGETS ?? "shipped,off,auth").split(",").map((name) => names[name.trim()]);
  if (asked.some((target) => target === undefined)) throw new Error("BENCH_FRESH_TARGETS: a list of shipped, off and auth");
  const targets = TARGETS.filter((target) => target === "gateway, all off" || asked.includes(target));
  const perCall: Record<Target, number[]> = { gateway: [], "gateway, all off": [], "gateway, auth only": [] };
  let authorization: string | undefined;
  try {
    // The shipped gateway creates the key (in the work dir's store) that the auth-only one is called with.
    if (!targets.includes("gateway")) {
      const shipped = await startGateway(options);
      authorization = shipped.authorization;
      await stopChild(shipped.child, 10_000);
    }
    for (let round = 1; round <= rounds; round++) {
      const order = round % 2 === 1 ? [...targets] : [...targets].reverse();
      for (const target of order) {
        const gateway = await start[target]();
        authorization = gateway.authorization ?? authorization;
        const keyed = target !== "gateway, all off";
        try {
          const pid = gateway.child.pid!;
          if (pinned) pin(pid, 0);
          await load(root, gateway.port, warmupS, keyed ? authorization : undefined, pinned);
          const before = cpuMicros(pid);
          const answered = await load(root, gateway.port, durationS, keyed ? authorization : undefined, pinned);
          const after = cpuMicros(pid);
          if (before === undefined || after === undefined || answered === 0) throw new Error(`${target}: no CPU reading or no call answered`);
          perCall[target].push((after - before) / answered);
          console.error(`round ${round}/${rounds}, ${target}: ${perCall[target].at(-1)!.toFixed(1)} µs/call`);
        } finally {
          await stopChild(gateway.child, 10_000);
        }
      }
    }
  } finally {
    await stopChild(provider.child);
  }
  const report = reportOf(perCall, targets, { rounds, warmupS, durationS, pinned }, machine);
  const file = path.join(benchDir, "results", process.env.BENCH_FRESH_TARGETS ? `fresh-${process.env.BENCH_FRESH_TARGETS.split(",").map((name) => name.trim()).join("-")}.md` : "fresh.md");
  writeFileSync(file, report);
  console.log(report);
  console.error(`written: ${path.relative(root, file)}`);
}

function hasTaskset(): boolean {
  try {
    execFileSync("taskset", ["-V"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Every thread of `pid` on `core`; threads it starts later inherit it. */
function pin(pid: number, core: number): void {
  execFileSync("taskset", ["-a", "-pc", String(core), String(pid)], { stdio: "ignore" });
}

/** REST calls at CONCURRENCY for `seconds`; resolves with how many were answered 200. */
async function load(root: string, port: number, seconds: number, authorization: string | undefined, pinned: boolean): Promise<number> {
  const args = ["-j", "-c", String(CONCURRENCY), "-d", String(seconds), "-m", "POST", "-H", "content-type: application/json", "-b", JSON.stringify(chatBody)];
  if (authorization) args.push("-H", `authorization: ${authorization}`);
  args.push(`http://127.0.0.1:${port}/api/v1/prompts/passthrough/bench/`);
  const autocannon = path.join(root, "node_modules/.bin/autocannon");
  const child = pinned ? spawn("taskset", ["-c", "1", autocannon, ...args], { stdio: ["ignore", "pipe", "ignore"] }) : spawn(autocannon, args, { stdio: ["ignore", "pipe", "ignore"] });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  await new Promise((resolve) => child.once("exit", resolve));
  return (JSON.parse(output) as { "2xx": number })["2xx"];
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

function reportOf(perCall: Record<Target, number[]>, targets: readonly Target[], run: { rounds: number; warmupS: number; durationS: number; pinned: boolean }, machine: string): string {
  const off = perCall["gateway, all off"];
  const row = (target: Target) => {
    const values = perCall[target];
    const ratio = target === "gateway, all off" ? undefined : ratioOf(values, off);
    const spread = `${Math.min(...values).toFixed(0)}–${Math.max(...values).toFixed(0)}`;
    return `| ${target} | ${median(values).toFixed(1)} | ${spread} | ${ratio ? `${ratio.median.toFixed(3)}× (${ratio.low.toFixed(3)}–${ratio.high.toFixed(3)})` : "–"} |`;
  };
  return [
    "## REST CPU per call, fresh processes",
    "",
    machine,
    "",
    `${run.rounds} rounds; in each, every target started afresh (odd rounds in the order below, even ones reversed), ${run.warmupS} s of warm-up, then ${run.durationS} s measured at concurrency ${CONCURRENCY}; ${run.pinned ? "the gateway pinned to core 0, the provider and autocannon to core 1" : "not pinned (taskset missing or one core)"}. CPU of the gateway process per call answered; ratios are medians of per-round ratios to the all-off gateway, with a bootstrap 95% interval.`,
    "",
    "| target | CPU µs/call (median) | rounds' range | ÷ all off (95% interval) |",
    "| --- | --- | --- | --- |",
    ...targets.map(row),
    "",
  ].join("\n");
}
