// The soak (npm run bench -- --soak): the built gateway in its own process, BENCH_SOAK_MINUTES of
// mixed load and faults from load-soak.ts, the gateway's RSS and CPU sampled every 10 s, then
// results/soak.md, soak.svg and soak.json. See test/bench/README.md.
import type { ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { startGateway, type GatewayHandle } from "./gateway.js";
import type { SoakLoadParams, SoakLoadResult } from "./load-soak.js";
import { cpuMicros, cpuReading, foreignCpuPercent, freePort, memoryKb, runLoadChild, startPortPrinter, stopChild } from "./proc.js";
import { SOAK_DEFAULT_MINUTES, type Settings } from "./settings.js";
import { DOWN_PROVIDER, PROVIDER } from "./soak-mix.js";
import { writeSoakReport, type SoakRun, type SoakSample } from "./soak-report.js";

const log = (line: string): void => void process.stderr.write(`${line}\n`);
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export const SAMPLE_INTERVAL_S = 10;
/** Every call is bounded by this; in-flight calls get as long again to finish after the load stops. */
const CALL_TIMEOUT_MS = 10_000;

export interface SoakOptions {
  root: string;
  benchDir: string;
  settings: Settings;
  /** The provider's command line (plain JS when it could be transpiled). */
  providerArgs: string[];
  /** Builds the gateway; returns the first lines of a failure. */
  build: () => Promise<string | undefined>;
  /** The date, machine, Node and revision line of the report. */
  machine: string;
  revision: string;
}

/** prom-client's default process metrics from the gateway's GET /metrics. */
async function gatewayMetrics(port: number): Promise<{ heapUsedMb: number; activeHandles: number; eventLoopLagMaxMs: number }> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(2000) });
    const text = await response.text();
    const metric = (name: string): number => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text)?.[1] ?? Number.NaN);
    return {
      heapUsedMb: metric("nodejs_heap_size_used_bytes") / 2 ** 20,
      activeHandles: metric("nodejs_active_handles_total"),
      // prom-client resets its event-loop histogram at each scrape: this is the interval's maximum.
      eventLoopLagMaxMs: metric("nodejs_eventloop_lag_max_seconds") * 1000,
    };
  } catch {
    return { heapUsedMb: Number.NaN, activeHandles: Number.NaN, eventLoopLagMaxMs: Number.NaN };
  }
}

function openFds(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return Number.NaN;
  }
}

/**
 * Reads the gateway process every time it is called, CPU relative to the previous call; also the
 * load generator's CPU once its pid is known.
 */
function gatewaySampler(pid: number, port: number) {
  let loadPid: number | undefined;
  const reading = () => ({ cpuUs: cpuMicros(pid) ?? Number.NaN, loadCpuUs: loadPid === undefined ? Number.NaN : (cpuMicros(loadPid) ?? Number.NaN), at: performance.now(), machine: cpuReading() });
  let previous = reading();
  const sample = async (atS: number): Promise<SoakSample> => {
    const metrics = await gatewayMetrics(port);
    const now = reading();
    const percentOfCore = (us: number): number => (us / ((now.at - previous.at) * 1000)) * 100;
    const sample: SoakSample = {
      atS,
      rssMb: (memoryKb(pid)?.rss ?? Number.NaN) / 1024,
      ...metrics,
      openFds: openFds(pid),
      cpuPct: percentOfCore(now.cpuUs - previous.cpuUs),
      loadCpuPct: percentOfCore(now.loadCpuUs - previous.loadCpuUs),
      otherCpuPct: foreignCpuPercent(previous.machine, now.machine),
    };
    previous = now;
    return sample;
  };
  return {
    sample,
    /** From now on, the load generator's CPU is read too. */
    watchLoad(childPid: number | undefined) {
      loadPid = childPid;
      previous = reading();
    },
  };
}

/**
 * The gateway's log: its JSON lines counted by level (a failed call is logged at warn, so warn
 * lines are expected), the first at error or above, and the lines that are not the logger's (a
 * Node.js warning, a crash trace).
 */
function readGatewayLog(file: string): SoakRun["gatewayLog"] {
  const summary: SoakRun["gatewayLog"] = { sizeMb: Number.NaN, warn: 0, errorOrWorse: 0, errorExamples: [], other: 0, otherExamples: [] };
  const cut = (text: string): string => (text.length > 300 ? `${text.slice(0, 300)}…` : text);
  try {
    summary.sizeMb = statSync(file).size / 2 ** 20;
    for (const text of readFileSync(file, "utf8").split("\n")) {
      if (!text.trim()) continue;
      let level = Number.NaN;
      try {
        level = Number((JSON.parse(text) as { level?: unknown }).level);
      } catch {
        // not the logger's
      }
      if (Number.isNaN(level)) {
        if (summary.other++ < 5) summary.otherExamples.push(cut(text));
      } else if (level >= 50) {
        if (summary.errorOrWorse++ < 5) summary.errorExamples.push(cut(text));
      } else if (level >= 40) summary.warn++;
    }
  } catch {
    // no log
  }
  return summary;
}

async function providerStats(port: number): Promise<SoakRun["provider"]> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/stats`, { signal: AbortSignal.timeout(2000) });
    return (await response.json()) as SoakRun["provider"];
  } catch {
    return undefined;
  }
}

export async function runSoak(options: SoakOptions): Promise<void> {
  const { settings } = options;
  const durationS = settings.soakMinutes * 60;
  log(`passthrough soak: ${settings.soakMinutes} min at ${settings.soakRatePerS} calls/s\n${options.machine}`);
  const workDir = mkdtempSync(path.join(os.tmpdir(), "passthrough-soak-"));
  process.once("exit", () => rmSync(workDir, { recursive: true, force: true }));
  const servers: ChildProcess[] = [];
  const notes: string[] = [];
  try {
    const provider = await startPortPrinter([...options.providerArgs, "--port", "0", "--chunks", "20", "--chunk-interval-ms", "5", "--faults"], { name: "provider" });
    servers.push(provider.child);
    // Free a moment ago and left closed: the provider that fails with ECONNREFUSED.
    const closedPort = await freePort();
    if (settings.build) {
      log("building the gateway (npm run build; BENCH_SKIP_BUILD=1 skips this)…");
      const buildError = await options.build();
      if (buildError) notes.push(`npm run build failed; the soak ran whatever dist/ holds. First lines: ${buildError.split("\n").join(" ")}`);
    }
    const gateway: GatewayHandle = await startGateway({
      root: options.root,
      workDir,
      providers: [{ name: PROVIDER, port: provider.port }, { name: DOWN_PROVIDER, port: closedPort }],
      startTimeoutMs: settings.gatewayStartTimeoutMs,
      extraYaml: settings.gatewayYaml,
    });
    servers.push(gateway.child);
    notes.push(...gateway.notes);
    const pid = gateway.child.pid ?? -1;
    let gatewayExit: string | undefined;
    gateway.child.once("exit", (code, signal) => void (gatewayExit = `exited during the soak (code ${code}, signal ${signal})`));
    log(`gateway listening on ${gateway.port} (pid ${pid}${gateway.authorization ? ", with an API key" : ", without an API key"})`);

    const sampler = gatewaySampler(pid, gateway.port);
    const samples: SoakSample[] = [];
    let sampling: Promise<void> | undefined;
    let stopped = false;
    let loadStarted = Number.NaN;
    const params: SoakLoadParams = {
      port: gateway.port,
      authorization: gateway.authorization,
      durationS,
      ratePerS: settings.soakRatePerS,
      windowS: SAMPLE_INTERVAL_S,
      callTimeoutMs: CALL_TIMEOUT_MS,
      drainMs: CALL_TIMEOUT_MS + 5000,
      only: settings.soakOnly,
    };
    let load: SoakLoadResult | undefined;
    try {
      load = await runLoadChild<SoakLoadResult>(
        path.join(options.benchDir, "load-soak.ts"),
        params,
        {
          onStart(loadPid) {
            sampler.watchLoad(loadPid);
            loadStarted = performance.now();
            sampling = (async () => {
              for (let index = 0; !stopped && index * SAMPLE_INTERVAL_S <= durationS; index++) {
                const due = loadStarted + index * SAMPLE_INTERVAL_S * 1000;
                if (due > performance.now()) await sleep(due - performance.now());
                if (stopped) break;
                const reading = await sampler.sample(index * SAMPLE_INTERVAL_S);
                samples.push(reading);
                log(`  ${(reading.atS / 60).toFixed(2)} min: RSS ${reading.rssMb.toFixed(1)} MB, heap ${reading.heapUsedMb.toFixed(1)} MB, gateway CPU ${reading.cpuPct.toFixed(0)}%, load generator ${reading.loadCpuPct.toFixed(0)}%, others ${reading.otherCpuPct.toFixed(0)}% of the machine`);
              }
            })();
          },
          onEnd() {
            stopped = true;
          },
        },
        (durationS + 60) * 1000 + params.drainMs,
      );
    } catch (error) {
      notes.push(`the load generator failed: ${(error instanceof Error ? error.message : String(error)).split("\n")[0]}`);
    }
    stopped = true;
    await sampling;
    await sleep(SAMPLE_INTERVAL_S * 1000);
    const idleSample = gatewayExit || Number.isNaN(loadStarted) ? undefined : await sampler.sample((performance.now() - loadStarted) / 1000);
    const run: SoakRun = {
      date: new Date().toISOString(),
      machine: options.machine,
      revision: options.revision,
      minutes: settings.soakMinutes,
      defaultMinutes: SOAK_DEFAULT_MINUTES,
      ratePerS: settings.soakRatePerS,
      sampleIntervalS: SAMPLE_INTERVAL_S,
      samples,
      idleSample,
      load,
      provider: await providerStats(provider.port),
      gatewayLog: readGatewayLog(path.join(workDir, "gateway.log")),
      gatewayExit,
      notes,
    };
    const resultsDir = path.join(options.benchDir, "results");
    mkdirSync(resultsDir, { recursive: true });
    process.stdout.write(`\n${writeSoakReport(resultsDir, run)}\n`);
    log("written: test/bench/results/soak.md, soak.svg, soak.json");
  } finally {
    await Promise.all(servers.reverse().map((child) => stopChild(child, 5000)));
    rmSync(workDir, { recursive: true, force: true });
  }
}
