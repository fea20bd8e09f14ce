// The benchmark (npm run bench): starts the test provider, the bare proxy and the gateway, drives
// each scenario from separate load processes, interleaving targets in every round, and prints one
// table per scenario with the targets' PASS/MISS; with --soak, the soak instead (soak.ts); with
// --instructions, instruction counts per call under valgrind (instructions.ts); with --fresh, the feature
// ratios on fresh, pinned processes (fresh.ts). See test/bench/README.md.
import { execFileSync, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { haproxyMissing, startBalancer, type Balancer } from "./balancer.js";
import { buildGateway, GATEWAY_NODE_FLAGS, setsSignals, startGateway, startGatewayOff, startSecondInstance, type GatewayHandle } from "./gateway.js";
import { runFresh } from "./fresh.js";
import { runInstructions } from "./instructions.js";
import { killAllChildren, startPortPrinter, stopChild } from "./proc.js";
import { BARE, BEHIND_HAPROXY_1, BEHIND_HAPROXY_2, comparisonTable, DIRECT, GATEWAY, GATEWAY_AUTH, GATEWAY_AUTH_CONNECT, GATEWAY_AUTH_GRPC, GATEWAY_CONNECT, GATEWAY_GRPC, GATEWAY_OFF, GATEWAY_OFF_CONNECT, GATEWAY_OFF_GRPC, Results, tables, verdicts, verdictTable, type RunRecord } from "./report.js";
import { Bench, type HttpTarget } from "./scenarios.js";
import { chatBody, readSettings } from "./settings.js";
import { runSoak } from "./soak.js";
import { median } from "./stats.js";

const benchDir = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(benchDir, "../..");

const log = (line: string): void => void process.stderr.write(`${line}\n`);

/**
 * Writes plain-JS copies of the provider and bare proxy (type annotations stripped by TypeScript)
 * so they run without a loader thread, like the built gateway; falls back to running them with tsx.
 */
async function serverArgs(name: "provider" | "bare-proxy"): Promise<string[]> {
  const source = path.join(benchDir, `${name}.ts`);
  try {
    const ts = (await import("typescript")).default;
    const out = path.join(benchDir, ".out");
    mkdirSync(out, { recursive: true });
    const compiled = ts.transpileModule(readFileSync(source, "utf8"), {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    }).outputText;
    const file = path.join(out, `${name}.mjs`);
    writeFileSync(file, compiled);
    return [file];
  } catch (error) {
    log(`note: could not transpile ${name}.ts (${String(error)}); running it with tsx`);
    return ["--import", "tsx", source];
  }
}

function gitRevision(): string {
  try {
    return execFileSync("git", ["describe", "--always", "--dirty"], { cwd: root }).toString().trim();
  } catch {
    return "unknown";
  }
}

/** Runs `task`, turning a failure into a note instead of ending the benchmark. */
async function attempt(bench: Bench, what: string, task: () => Promise<void>): Promise<void> {
  try {
    await task();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    bench.notes.push(`${what}: ${message.split("\n")[0]}`);
    log(`  ${what} failed: ${message}`);
  }
}

async function main(): Promise<void> {
  const settings = readSettings();
  const started = new Date();
  const cpus = os.cpus();
  const header = `${started.toISOString()} · ${cpus[0]?.model ?? "unknown CPU"} · ${cpus.length} cores · Node ${process.version} · passthrough ${gitRevision()}`;
  if (process.argv.includes("--soak")) {
    await runSoak({ root, benchDir, settings, providerArgs: await serverArgs("provider"), build: () => buildGateway(root), machine: header, revision: gitRevision() });
    return;
  }
  const mode = process.argv.includes("--fresh") ? runFresh : process.argv.includes("--instructions") ? runInstructions : undefined;
  if (mode) {
    await mode({ root, benchDir, providerArgs: await serverArgs("provider"), build: settings.build ? () => buildGateway(root) : undefined, machine: header });
    return;
  }
  const knobs = `duration ${settings.durationS} s + ${settings.warmupS} s warm-up · ${settings.rounds} rounds (medians) · concurrency ${settings.connections} · SSE ${settings.sseSequential} sequential + ${settings.sseConcurrentRequests} concurrent streams of ${settings.sseChunks} chunks every ${settings.sseIntervalMs} ms · ${settings.streams} open streams of ${settings.streamChunks} chunks every ${settings.streamIntervalMs} ms, opened over ${settings.streamRampMs} ms · provider latency ${settings.providerLatencyMs} ms`;
  log(`passthrough benchmark\n${header}\n${knobs}`);

  const workDir = mkdtempSync(path.join(os.tmpdir(), "passthrough-bench-"));
  process.once("exit", () => rmSync(workDir, { recursive: true, force: true }));
  const bench = new Bench(settings);
  const servers: ChildProcess[] = [];
  try {
    const providerArgs = await serverArgs("provider");
    // The bare proxy runs on the gateway's node options too, so that the baseline is not handicapped.
    const bareArgs = [...GATEWAY_NODE_FLAGS, ...(await serverArgs("bare-proxy"))];
    const provider = await startPortPrinter(
      [...providerArgs, "--port", "0", "--latency-ms", String(settings.providerLatencyMs), "--chunks", String(settings.sseChunks), "--chunk-interval-ms", String(settings.sseIntervalMs)],
      { name: "provider" },
    );
    servers.push(provider.child);
    const bare = await startPortPrinter([...bareArgs, "--port", "0", "--target", `http://127.0.0.1:${provider.port}`], { name: "bare proxy" });
    servers.push(bare.child);

    const wantStreams = settings.scenarios.has("streams");
    const slowProvider = wantStreams
      ? await startPortPrinter([...providerArgs, "--port", "0", "--chunks", String(settings.streamChunks), "--chunk-interval-ms", String(settings.streamIntervalMs)], { name: "slow provider" })
      : undefined;
    const slowBare = slowProvider
      ? await startPortPrinter(
          [...bareArgs, "--port", "0", "--target", `http://127.0.0.1:${slowProvider.port}`, "--connections", String(settings.streams + 16)],
          { name: "slow bare proxy" },
        )
      : undefined;
    for (const server of [slowProvider, slowBare]) if (server) servers.push(server.child);

    let gateway: GatewayHandle | undefined;
    let gatewayOff: GatewayHandle | undefined;
    let gatewayAuth: GatewayHandle | undefined;
    if (!settings.gateway) {
      bench.notes.push("gateway skipped: BENCH_GATEWAY=0.");
    } else {
      if (settings.build) {
        log("building the gateway (npm run build; BENCH_SKIP_BUILD=1 skips this)…");
        const buildError = await buildGateway(root);
        if (buildError) bench.notes.push(`npm run build failed; trying whatever dist/ holds. First lines:\n\n    ${buildError.split("\n").join("\n    ")}`);
      }
      const providers = [{ name: "bench", port: provider.port }, ...(slowProvider ? [{ name: "benchslow", port: slowProvider.port }] : [])];
      const gatewayOptions = { root, workDir, providers, startTimeoutMs: settings.gatewayStartTimeoutMs, extraYaml: settings.gatewayYaml };
      if (setsSignals(settings.gatewayYaml)) bench.notes.push("BENCH_GATEWAY_YAML has a `signals` section: both gateways use it instead of the bench's (a log sink to a file as shipped, none all off).");
      /** Starts one gateway under test; one that does not start is left out, and the report says so. */
      const launch = async (name: string, start: () => Promise<GatewayHandle>): Promise<GatewayHandle | undefined> => {
        try {
          const handle = await start();
          servers.push(handle.child);
          log(`${name} listening on ${handle.port} (pid ${handle.child.pid})`);
          return handle;
        } catch (error) {
          const message = error instanceof Error ? error.message : String(error);
          bench.notes.push(`${name.toUpperCase()} NOT MEASURED: it did not start (${message.replace(/\s*\n\s*/g, " ")}).`);
          log(`${name.toUpperCase()} NOT MEASURED: ${message}`);
          return undefined;
        }
      };
      gateway = await launch(GATEWAY, () => startGateway(gatewayOptions));
      if (gateway) {
        bench.notes.push(...gateway.notes);
        log(`the gateway ${gateway.authorization ? "has an API key" : "is called without an API key"}`);
      }
      if (!settings.gatewayOff) {
        bench.notes.push("gateway, all off skipped: BENCH_GATEWAY_OFF=0.");
      } else {
        gatewayOff = await launch(GATEWAY_OFF, () => startGatewayOff(gatewayOptions));
        // Authentication alone needs the key the shipped gateway's store holds.
        const authorization = gateway?.authorization;
        if (gatewayOff && authorization) gatewayAuth = await launch(GATEWAY_AUTH, async () => ({ ...(await startGatewayOff(gatewayOptions, "auth")), authorization }));
      }
    }

    // The cluster scenario: HAProxy in front of the shipped gateway (named on both server lines),
    // and in front of it and a second instance, in the same rounds as the gateway alone.
    let balancers: { one: Balancer; two: Balancer; second: GatewayHandle } | undefined;
    if (settings.scenarios.has("cluster") && gateway) {
      const missing = haproxyMissing();
      if (missing) bench.notes.push(`cluster scenario skipped: ${missing}.`);
      else {
        await attempt(bench, "cluster setup", async () => {
          const second = await startSecondInstance({ root, workDir, startTimeoutMs: settings.gatewayStartTimeoutMs }, gateway!);
          servers.push(second.child);
          const one = await startBalancer(root, workDir, "haproxy-1", [gateway!.port, gateway!.port]);
          servers.push(one.child);
          const two = await startBalancer(root, workDir, "haproxy-2", [gateway!.port, second.port]);
          servers.push(two.child);
          balancers = { one, two, second };
          log(`HAProxy on ${one.port} (→ ${gateway!.port}) and on ${two.port} (→ ${gateway!.port}, ${second.port})`);
        });
      }
    }

    const json = { "content-type": "application/json" };
    const auth: Record<string, string> = gateway?.authorization ? { authorization: gateway.authorization } : {};
    const pidOf = (child: ChildProcess): number => child.pid ?? -1;
    const restUrl = (handle: GatewayHandle, slow: boolean): string => `http://127.0.0.1:${handle.port}/api/v1/prompts/passthrough/${slow ? "benchslow" : "bench"}/`;
    /** The REST targets in the order of every round; the all-off gateway only where `withOff`, the auth-only one where `withAuth`. */
    const targets = (slow: boolean, withOff: boolean, withAuth = false): HttpTarget[] => {
      const upstream = slow ? slowProvider : provider;
      const proxy = slow ? slowBare : bare;
      const list: HttpTarget[] = [];
      if (upstream) list.push({ name: DIRECT, pid: pidOf(upstream.child), url: `http://127.0.0.1:${upstream.port}/v1/chat/completions`, headers: json });
      if (proxy) list.push({ name: BARE, pid: pidOf(proxy.child), url: `http://127.0.0.1:${proxy.port}/v1/chat/completions`, headers: json });
      if (gateway) list.push({ name: GATEWAY, pid: pidOf(gateway.child), url: restUrl(gateway, slow), headers: { ...json, ...auth } });
      if (gatewayOff && withOff) list.push({ name: GATEWAY_OFF, pid: pidOf(gatewayOff.child), url: restUrl(gatewayOff, slow), headers: json });
      if (gatewayAuth && withAuth) list.push({ name: GATEWAY_AUTH, pid: pidOf(gatewayAuth.child), url: restUrl(gatewayAuth, slow), headers: { ...json, ...auth } });
      return list;
    };
    const body = JSON.stringify(chatBody);
    const connectHeaders = { ...json, "connect-protocol-version": "1" };
    const connectTarget = (name: string, handle: GatewayHandle, headers: Record<string, string>): HttpTarget => ({
      name,
      pid: pidOf(handle.child),
      url: `http://127.0.0.1:${handle.port}/smarter.prompt.v1.PassthroughService/Passthrough`,
      headers,
    });
    const connectTargets = [
      ...(gateway ? [connectTarget(GATEWAY_CONNECT, gateway, { ...connectHeaders, ...auth })] : []),
      ...(gatewayOff ? [connectTarget(GATEWAY_OFF_CONNECT, gatewayOff, connectHeaders)] : []),
      ...(gatewayAuth ? [connectTarget(GATEWAY_AUTH_CONNECT, gatewayAuth, { ...connectHeaders, ...auth })] : []),
    ];
    const grpcTargets: Array<{ handle: GatewayHandle; name: string }> = [];
    if (gateway) grpcTargets.push({ handle: gateway, name: GATEWAY_GRPC });
    if (gatewayOff) grpcTargets.push({ handle: gatewayOff, name: GATEWAY_OFF_GRPC });
    if (gatewayAuth) grpcTargets.push({ handle: gatewayAuth, name: GATEWAY_AUTH_GRPC });
    const connectBody = JSON.stringify({ providerName: "bench", body: chatBody });

    /**
     * The gateways of a round in their listed order in odd rounds and in reverse in even ones
     * (the direct and bare-proxy references first in both), so that a machine that drifts
     * within a round does not always weigh on the same gateway: their ratios are per round.
     */
    const inRoundOrder = <T extends { name: string }>(list: T[], round: number): T[] => {
      if (round % 2 === 1) return list;
      const references = list.filter((target) => target.name === DIRECT || target.name === BARE);
      return [...references, ...list.filter((target) => !references.includes(target)).reverse()];
    };
    const unary = ["rest", "grpc", "connect"].some((name) => settings.scenarios.has(name));
    for (let round = 1; unary && round <= settings.rounds; round++) {
      log(`unary, round ${round}/${settings.rounds}`);
      for (const target of inRoundOrder(targets(false, true, true), round)) await attempt(bench, `rest ${target.name}`, () => bench.http("rest", round, target, settings.connections, body));
      if (settings.scenarios.has("grpc")) {
        for (const { handle, name } of inRoundOrder(grpcTargets, round)) await attempt(bench, `grpc ${name}`, () => bench.grpc(round, handle, name));
      }
      if (settings.scenarios.has("connect")) {
        for (const target of inRoundOrder(connectTargets, round)) await attempt(bench, `connect ${target.name}`, () => bench.http("connect", round, target, settings.connections, connectBody));
      }
      if (settings.scenarios.has("rest")) {
        for (const target of inRoundOrder(targets(false, true), round)) await attempt(bench, `rest c=1 ${target.name}`, () => bench.http("rest-c1", round, target, 1, body));
      }
    }
    if (balancers && gateway) {
      const { one, two, second } = balancers;
      const rest = (port: number) => `http://127.0.0.1:${port}/api/v1/prompts/passthrough/bench/`;
      const headers = { ...json, ...auth };
      const clusterTargets: HttpTarget[] = [
        { name: GATEWAY, pid: pidOf(gateway.child), url: rest(gateway.port), headers },
        { name: BEHIND_HAPROXY_1, pid: pidOf(gateway.child), balancerPid: pidOf(one.child), url: rest(one.port), headers },
        { name: BEHIND_HAPROXY_2, pid: pidOf(gateway.child), morePids: [pidOf(second.child)], balancerPid: pidOf(two.child), url: rest(two.port), headers },
      ];
      for (let round = 1; round <= settings.rounds; round++) {
        log(`cluster, round ${round}/${settings.rounds}`);
        for (const target of clusterTargets) await attempt(bench, `cluster ${target.name}`, () => bench.http("cluster", round, target, settings.connections, body));
      }
    }
    for (let round = 1; settings.scenarios.has("sse") && round <= settings.rounds; round++) {
      log(`SSE, round ${round}/${settings.rounds}`);
      for (const target of targets(false, true)) await attempt(bench, `sse ${target.name}`, () => bench.sse(round, target));
    }
    for (let round = 1; wantStreams && round <= settings.rounds; round++) {
      log(`${settings.streams} open streams, round ${round}/${settings.rounds}`);
      for (const target of targets(true, false)) await attempt(bench, `streams ${target.name}`, () => bench.streams(round, target));
    }
    for (const [handle, name] of [[gateway, GATEWAY], [gatewayOff, GATEWAY_OFF], [gatewayAuth, GATEWAY_AUTH]] as const) {
      if (handle && handle.child.exitCode !== null) bench.notes.push(`the ${name} exited during the benchmark (code ${handle.child.exitCode}); see its log.`);
    }

    const foreign = bench.records.map((record) => record.foreignCpuPct).filter(Number.isFinite);
    if (foreign.length && Math.max(...foreign) > 10) {
      bench.notes.push(
        `Other work shared the machine: outside the benchmark's processes, ${median(foreign).toFixed(0)}% of the cores were busy in the median run (max ${Math.max(...foreign).toFixed(0)}%). Figures from such runs are noisy; CPU per call suffers least. See "foreignCpuPct" in latest.json.`,
      );
    }
    const results = new Results(bench.records);
    const verdictList = verdicts(results, { streams: settings.streams });
    const resultsDir = path.join(benchDir, "results");
    const previous = settings.compareWith === "" ? undefined : readPrevious(settings.compareWith ?? path.join(resultsDir, "latest.json"));
    const markdown = [
      "## passthrough benchmark",
      "",
      header,
      "",
      knobs,
      "",
      verdictTable(verdictList),
      ...(previous ? [comparisonTable(previous, results)] : []),
      tables(results, settings),
      ...(bench.notes.length ? ["### Notes", "", ...bench.notes.map((note) => `- ${note}`), ""] : []),
    ].join("\n");
    process.stdout.write(`\n${markdown}\n`);
    mkdirSync(resultsDir, { recursive: true });
    writeFileSync(path.join(resultsDir, "latest.md"), markdown);
    writeFileSync(
      path.join(resultsDir, "latest.json"),
      `${JSON.stringify({ date: started.toISOString(), cpu: cpus[0]?.model, cores: cpus.length, node: process.version, revision: gitRevision(), settings: { ...settings, scenarios: [...settings.scenarios] }, verdicts: verdictList, notes: bench.notes, runs: bench.records }, null, 2)}\n`,
    );
    log(`written: test/bench/results/latest.md, test/bench/results/latest.json`);
  } finally {
    await Promise.all(servers.reverse().map((child) => stopChild(child, 5000)));
    killAllChildren("SIGKILL");
    rmSync(workDir, { recursive: true, force: true });
  }
}

/** An earlier run's latest.json to compare with, when there is a readable one. */
function readPrevious(file: string): { results: Results; label: string } | undefined {
  try {
    const earlier = JSON.parse(readFileSync(file, "utf8")) as { date: string; revision: string; runs: RunRecord[] };
    return { results: new Results(earlier.runs), label: `the run of ${earlier.date.slice(0, 16).replace("T", " ")} UTC (${earlier.revision})` };
  } catch {
    return undefined;
  }
}

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    killAllChildren("SIGKILL");
    process.exit(130);
  });
}

main().catch((error: unknown) => {
  log(`benchmark failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
  killAllChildren("SIGKILL");
  process.exitCode = 1;
});
