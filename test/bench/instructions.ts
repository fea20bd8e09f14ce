// `npm run bench -- --instructions`: the gateways' CPU per REST call counted in instructions rather
// than in time, so that a host that slows the machine (the timed rounds' noise) does not show.
// Each gateway runs under `valgrind --tool=cachegrind --cache-sim=no` (node --single-threaded, so
// that the compiler's and collector's threads are counted too), once for N1 calls and once for N2;
// the difference divided by N2 - N1 is what a call costs once start-up and warm-up are done.
// User-space instructions only: system calls (the journal's and the logs' writes) are not counted.
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { authenticates, benchKey, benchTargets, startBenchTarget, type GatewayOptions } from "./gateway.js";
import { startPortPrinter, stopChild } from "./proc.js";
import { chatBody } from "./settings.js";

export interface InstructionOptions {
  root: string;
  benchDir: string;
  providerArgs: string[];
  build: (() => Promise<string | undefined>) | undefined;
  machine: string;
}

/** One gateway's two runs: the instructions each took in all. */
interface Measured {
  readonly target: string;
  readonly instructions: readonly number[];
}

const CONCURRENCY = 8;

export async function runInstructions({ root, benchDir, providerArgs, build, machine }: InstructionOptions): Promise<void> {
  try {
    execFileSync("valgrind", ["--version"], { stdio: "ignore" });
  } catch {
    console.error("valgrind is not installed (apt-get install valgrind): no instruction counts");
    process.exitCode = 1;
    return;
  }
  const calls = (process.env.BENCH_INSTRUCTION_CALLS ?? "3000,20000").split(",").map(Number);
  if (calls.length !== 2 || !calls.every((n) => Number.isInteger(n) && n > 0) || calls[0] >= calls[1]) {
    throw new Error("BENCH_INSTRUCTION_CALLS: two rising call counts, such as 3000,20000");
  }
  const buildError = await build?.();
  if (buildError) console.error(`npm run build failed; measuring whatever dist/ holds:\n${buildError}`);
  const workDir = mkdtempSync(path.join(os.tmpdir(), "passthrough-instructions-"));
  process.once("exit", () => rmSync(workDir, { recursive: true, force: true }));
  const provider = await startPortPrinter([...providerArgs, "--port", "0", "--latency-ms", "0"], { name: "provider" });
  const outDir = path.join(workDir, "cachegrind");
  mkdirSync(outDir);
  const options: GatewayOptions = {
    root,
    workDir,
    providers: [{ name: "bench", port: provider.port }],
    // valgrind starts node about 50 times slower.
    startTimeoutMs: 180_000,
    launcher: ["valgrind", "--tool=cachegrind", "--cache-sim=no", `--cachegrind-out-file=${outDir}/%p.out`, process.execPath, "--single-threaded"],
  };
  // The shipped gateway first: it creates the API key (in the work dir's store) that the auth-only one is called with.
  // BENCH_INSTRUCTION_TARGETS=off,auth (say) leaves the shipped gateway out.
  const targets = benchTargets("BENCH_INSTRUCTION_TARGETS");
  let authorization: string | undefined;
  const measured: Measured[] = [];
  try {
    authorization = await benchKey(targets, options);
    for (const name of targets) {
      const keyed = authenticates(name);
      const counts: number[] = [];
      for (const n of calls) {
        const gateway = await startBenchTarget(name, options);
        authorization = gateway.authorization ?? authorization;
        const answered = await load(root, gateway.port, n, keyed ? authorization : undefined);
        await stopChild(gateway.child, 120_000);
        if (answered !== n) throw new Error(`${name}: ${answered} of ${n} calls answered 200`);
        counts.push(instructionsOf(path.join(outDir, `${gateway.child.pid}.out`)));
        console.error(`${name}: ${n} calls, ${counts.at(-1)} instructions in all`);
      }
      measured.push({ target: name, instructions: counts });
    }
  } finally {
    await stopChild(provider.child);
  }
  const report = reportOf(measured, calls, machine);
  const file = path.join(benchDir, "results", "instructions.md");
  writeFileSync(file, report);
  console.log(report);
  console.error(`written: ${path.relative(root, file)}`);
}

/** N REST calls at CONCURRENCY from autocannon; resolves with how many were answered 200. */
async function load(root: string, port: number, n: number, authorization: string | undefined): Promise<number> {
  const args = ["-j", "-c", String(CONCURRENCY), "-a", String(n), "-m", "POST", "-H", "content-type: application/json", "-b", JSON.stringify(chatBody)];
  if (authorization) args.push("-H", `authorization: ${authorization}`);
  args.push(`http://127.0.0.1:${port}/api/v1/prompts/passthrough/bench/`);
  const child = spawn(path.join(root, "node_modules/.bin/autocannon"), args, { stdio: ["ignore", "pipe", "ignore"] });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  await new Promise((resolve) => child.once("exit", resolve));
  return (JSON.parse(output) as { "2xx": number })["2xx"];
}

/** The total of a cachegrind output file (its `summary:` line). */
function instructionsOf(file: string): number {
  const summary = /^summary:\s+(\d+)/m.exec(readFileSync(file, "utf8"));
  if (!summary) throw new Error(`${file} has no summary line`);
  return Number(summary[1]);
}

function reportOf(measured: readonly Measured[], [n1, n2]: readonly number[], machine: string): string {
  const perCall = (m: Measured) => (m.instructions[1] - m.instructions[0]) / (n2 - n1);
  const off = measured.find((m) => m.target === "gateway, all off");
  const rows = measured.map((m) => {
    const ratio = off ? `${(perCall(m) / perCall(off)).toFixed(2)}×` : "–";
    return `| ${m.target} | ${m.instructions[0].toLocaleString("en")} | ${m.instructions[1].toLocaleString("en")} | ${Math.round(perCall(m)).toLocaleString("en")} | ${ratio} |`;
  });
  return [
    "## Instructions per REST call",
    "",
    machine,
    "",
    `Each gateway under cachegrind (\`node --single-threaded\`), ${n1.toLocaleString("en")} and then ${n2.toLocaleString("en")} REST calls at concurrency ${CONCURRENCY}, each run a fresh process; per call: the difference ÷ ${(n2 - n1).toLocaleString("en")}. User space only.`,
    "",
    `| gateway | instructions, ${n1.toLocaleString("en")} calls | instructions, ${n2.toLocaleString("en")} calls | per call | ÷ all off |`,
    "| --- | --- | --- | --- | --- |",
    ...rows,
    "",
  ].join("\n");
}
