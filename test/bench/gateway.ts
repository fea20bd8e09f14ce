// Starting the gateways under test: build it, write a config in a temp dir pointing at the test
// providers; as shipped, create an API key with its own CLI and spawn `passthrough serve`; all off,
// spawn gateway-off.mjs; then wait for /healthz.
import { execFile, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { freePort, spawnTracked, stopChild } from "./proc.js";

const run = promisify(execFile);

export interface GatewayHandle {
  child: ChildProcess;
  port: number;
  /** Value of the authorization header, when a key could be created. */
  authorization?: string;
  notes: string[];
}

export interface GatewayOptions {
  root: string;
  workDir: string;
  providers: Array<{ name: string; port: number }>;
  startTimeoutMs: number;
  extraYaml?: string;
  /** The command line that runs the gateway's script instead of plain `node`, such as valgrind, its options, node and node's (instructions.ts). */
  launcher?: readonly string[];
}

/**
 * The node options `bin/passthrough.js` runs with (its `#!/usr/bin/env -S node …` line), for
 * every gateway the bench starts, as shipped or not, and for the bare proxy: one runtime for all.
 */
export const GATEWAY_NODE_FLAGS: readonly string[] = (() => {
  const shebang = readFileSync(fileURLToPath(new URL("../../bin/passthrough.js", import.meta.url)), "utf8").split("\n", 1)[0];
  return /^#!\/usr\/bin\/env -S node\b(.*)$/.exec(shebang)?.[1].trim().split(/\s+/).filter(Boolean) ?? [];
})();

/** The gateway's environment: ours, minus anything that would point it at shared state. */
function gatewayEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of ["DATABASE_URL", "REDIS_URL", "PASSTHROUGH_CONFIG", "NATS_URL"]) delete env[name];
  return env;
}

export async function buildGateway(root: string): Promise<string | undefined> {
  try {
    await run("npm", ["run", "--silent", "build"], { cwd: root, timeout: 180_000, maxBuffer: 16 << 20 });
    return undefined;
  } catch (error) {
    const output = error as { stdout?: string; stderr?: string; message?: string };
    const text = `${output.stdout ?? ""}${output.stderr ?? ""}`.trim() || String(output.message);
    return text.split("\n").slice(0, 8).join("\n");
  }
}

/**
 * The gateways the feature ratios compare, by the short names the bench's lists take: as shipped,
 * all off, auth only, and the floor (all off plus the least per-call work of the journal and the
 * log sink, gateway-off.mjs --floor), which is only measured when asked for.
 */
const BENCH_TARGETS = { shipped: "gateway", off: "gateway, all off", auth: "gateway, auth only", floor: "gateway, floor" } as const;
export type BenchTarget = (typeof BENCH_TARGETS)[keyof typeof BENCH_TARGETS];

/**
 * The gateways the list in environment variable `variable` names (of shipped, off, auth and
 * floor; unset, the first three), in that order; all off is always among them, as the baseline.
 */
export function benchTargets(variable: string): BenchTarget[] {
  const asked = (process.env[variable] ?? "shipped,off,auth").split(",").map((name) => name.trim());
  if (!asked.every((name) => name in BENCH_TARGETS)) throw new Error(`${variable}: a list of shipped, off, auth and floor`);
  return Object.entries(BENCH_TARGETS)
    .filter(([short]) => short === "off" || asked.includes(short))
    .map(([, target]) => target);
}

/** Whether the target authenticates, and so is called with the bench's key. */
export const authenticates = (target: BenchTarget) => target === "gateway" || target === "gateway, auth only";

/** Starts one of them: as shipped, all off, auth only (over the work dir's key store), or the floor. */
export function startBenchTarget(target: BenchTarget, options: GatewayOptions): Promise<GatewayHandle> {
  if (target === "gateway") return startGateway(options);
  return startGatewayOff(options, OFF_VARIANTS[target]);
}

/** gateway-off.mjs's option for each target it runs (none for all off). */
const OFF_VARIANTS: Partial<Record<BenchTarget, "auth" | "floor">> = { "gateway, auth only": "auth", "gateway, floor": "floor" };

/**
 * The API key the auth-only gateway is called with, for a run of `targets` that leaves the
 * shipped gateway (which creates one as it starts) out: one is started (plainly, without
 * `launcher`) for the key it creates in the work dir's store, then stopped. Undefined when no
 * such key is needed.
 */
export async function benchKey(targets: readonly BenchTarget[], options: GatewayOptions): Promise<string | undefined> {
  if (targets.includes("gateway") || !targets.includes("gateway, auth only")) return undefined;
  const shipped = await startGateway({ ...options, launcher: undefined });
  await stopChild(shipped.child, 10_000);
  return shipped.authorization;
}

/** Whether BENCH_GATEWAY_YAML has its own `signals` section, which then replaces the bench's. */
export function setsSignals(extraYaml: string | undefined): boolean {
  return /^signals\s*:/m.test(extraYaml ?? "");
}

/** The config in `dir`; `signals` is the YAML of its signals section (left out when extraYaml has one). */
function writeConfig(options: GatewayOptions, dir: string, signals: string): string {
  const providers = options.providers
    .map(({ name, port }) => `  - { name: ${name}, baseUrl: "http://127.0.0.1:${port}/v1" }`)
    .join("\n");
  const ownSignals = setsSignals(options.extraYaml) ? "" : `signals: ${signals}\n`;
  const yaml = `server: { host: 127.0.0.1, port: 0 }\nproviders:\n${providers}\nlogging: { level: warn }\n${ownSignals}${options.extraYaml ?? ""}`;
  const file = path.join(dir, "passthrough.yaml");
  writeFileSync(file, yaml);
  return file;
}

async function createKey(cli: string, config: string, workDir: string): Promise<{ key?: string; note?: string }> {
  try {
    const { stdout } = await run(process.execPath, [cli, "keys", "create", "--name", "bench", "--config", config], {
      cwd: workDir,
      env: gatewayEnv(),
      timeout: 20_000,
    });
    const key = stdout.trim().split("\n").pop()?.trim();
    return key ? { key } : { note: "`passthrough keys create` printed nothing; calling without a key" };
  } catch (error) {
    const output = error as { stderr?: string; message?: string };
    const reason = (output.stderr?.trim() || String(output.message)).split("\n")[0];
    return { note: `\`passthrough keys create\` failed (${reason}); calling without a key` };
  }
}

async function healthy(port: number): Promise<boolean> {
  try {
    const response = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1000) });
    await response.arrayBuffer();
    return response.status === 200;
  } catch {
    return false;
  }
}

function logTail(file: string): string {
  try {
    return readFileSync(file, "utf8").trim().split("\n").slice(-8).join("\n");
  } catch {
    return "";
  }
}

/**
 * Starts the gateway as shipped (`passthrough serve`, an API key, the journal in the work dir, the
 * log sink writing to signals.jsonl there); throws with the reason (and its log's tail) when it is
 * not healthy in time.
 */
export async function startGateway(options: GatewayOptions): Promise<GatewayHandle> {
  const notes: string[] = [];
  const cli = path.join(options.root, "bin/passthrough.js");
  if (!existsSync(path.join(options.root, "dist/cli/main.js"))) throw new Error("dist/cli/main.js does not exist (the gateway is not built)");
  const signalsFile = path.join(options.workDir, "signals.jsonl");
  const config = writeConfig(options, options.workDir, `{ sinks: [{ type: log, path: ${JSON.stringify(signalsFile)} }] }`);
  const { key, note } = await createKey(cli, config, options.workDir);
  if (note) notes.push(note);
  const port = await freePort();
  const child = await spawnHealthy([cli, "serve", "--config", config, "--port", String(port)], port, options.workDir, options.startTimeoutMs, options.workDir, options.launcher);
  return { child, port, authorization: key ? `Bearer ${key}` : undefined, notes };
}

/**
 * Starts another instance of the shipped gateway beside `startGateway`'s: the same config, folder,
 * SQLite store and key, on a port of its own (so its instanceId, `<hostname>-<port>`, differs).
 */
export async function startSecondInstance(options: Pick<GatewayOptions, "root" | "workDir" | "startTimeoutMs">, first: GatewayHandle): Promise<GatewayHandle> {
  const cli = path.join(options.root, "bin/passthrough.js");
  const port = await freePort();
  const dir = path.join(options.workDir, "second");
  mkdirSync(dir, { recursive: true });
  // Its own log file, but the first instance's folder, so the relative ./data paths are shared.
  const child = await spawnHealthy([cli, "serve", "--config", path.join(options.workDir, "passthrough.yaml"), "--port", String(port)], port, dir, options.startTimeoutMs, options.workDir);
  return { child, port, authorization: first.authorization, notes: [] };
}

/**
 * Starts the same built gateway with authentication, the journal and every signal sink off
 * (gateway-off.mjs, in its own subfolder of the work dir, so with its own SQLite store); called
 * without an authorization header. With `auth` (the "auth only" target), authentication is on,
 * over the shipped gateway's key store (it runs in the work dir), and it is called with its key;
 * with `floor`, it does the floor's work (gateway-off.mjs --floor) in its own subfolder.
 */
export async function startGatewayOff(options: GatewayOptions, variant?: "auth" | "floor"): Promise<GatewayHandle> {
  if (!existsSync(path.join(options.root, "dist/server/gateway.js"))) throw new Error("dist/server/gateway.js does not exist (the gateway is not built)");
  const auth = variant === "auth";
  const dir = path.join(options.workDir, variant === undefined ? "all-off" : auth ? "auth-only" : "floor");
  mkdirSync(dir, { recursive: true });
  const config = writeConfig(options, dir, "{ sinks: [] }");
  const port = await freePort();
  const script = path.join(options.root, "test/bench/gateway-off.mjs");
  const args = [script, "--config", config, "--port", String(port), ...(variant ? [`--${variant}`] : [])];
  const child = await spawnHealthy(args, port, dir, options.startTimeoutMs, auth ? options.workDir : dir, options.launcher);
  return { child, port, notes: [] };
}

/** Spawns `node args` (or `launcher args`) in `cwd` (default `dir`), logging to dir/gateway.log, and waits for GET /healthz on `port`. */
async function spawnHealthy(args: string[], port: number, dir: string, startTimeoutMs: number, cwd = dir, launcher: readonly string[] = []): Promise<ChildProcess> {
  const logFile = path.join(dir, "gateway.log");
  const log = openSync(logFile, "a");
  const [command, ...prefix] = launcher.length > 0 ? launcher : [process.execPath];
  const child = spawnTracked(command, [...prefix, ...GATEWAY_NODE_FLAGS, ...args], { cwd, env: gatewayEnv(), stdio: ["ignore", log, log] });
  let exited: string | undefined;
  child.once("exit", (code, signal) => {
    exited = `exited with code ${code}, signal ${signal}`;
  });
  const deadline = Date.now() + startTimeoutMs;
  while (Date.now() < deadline && !exited) {
    if (await healthy(port)) return child;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  const reason = exited ?? `GET /healthz did not answer 200 within ${startTimeoutMs / 1000} s`;
  await stopChild(child, 2000);
  const tail = logTail(logFile);
  throw new Error(`gateway ${reason}${tail ? `; its log ends with:\n${tail}` : ""}`);
}
