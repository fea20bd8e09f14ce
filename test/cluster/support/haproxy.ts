import { spawn, spawnSync } from "node:child_process";
import { connect } from "node:net";
import { join } from "node:path";

/** The configuration the README documents, filled from the environment. */
export const HAPROXY_CONFIG = join(import.meta.dirname, "../../../deploy/haproxy.cfg");

/** Undefined when `haproxy` can be run, else why not (`.ci/run` installs Debian's package). */
export function probeHaproxy(): string | undefined {
  const result = spawnSync("haproxy", ["-v"], { encoding: "utf8" });
  if (result.error) return `haproxy cannot be run (${(result.error as NodeJS.ErrnoException).code}): apt-get install -y haproxy`;
  return undefined;
}

export interface Haproxy {
  /** `http://127.0.0.1:PORT`, the frontend callers use. */
  readonly url: string;
  /** Every line HAProxy wrote (its log, one line per request, and its alerts). */
  readonly output: string[];
  /** Each server's operational state as `show stat` reports it: "UP", "DOWN", "UP 1/2", … */
  serverStates(): Promise<Record<string, string>>;
  /** Resolves once every named server is in `state` (exactly, e.g. "UP"), or throws after `timeoutMs`. */
  waitFor(servers: readonly string[], state: string, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** Runs `haproxy -db -f deploy/haproxy.cfg` in the foreground with these instances behind it. */
export async function startHaproxy(options: { port: number; instances: readonly number[]; socket: string }): Promise<Haproxy> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    PASSTHROUGH_LB_BIND: `127.0.0.1:${options.port}`,
    PASSTHROUGH_LB_STATS: options.socket,
  };
  options.instances.forEach((port, index) => (env[`PASSTHROUGH_INSTANCE_${index + 1}`] = `127.0.0.1:${port}`));
  const child = spawn("haproxy", ["-db", "-f", HAPROXY_CONFIG], { env, stdio: ["ignore", "pipe", "pipe"] });
  const output: string[] = [];
  const orphaned = () => child.kill("SIGKILL");
  process.once("exit", orphaned);
  const exited = new Promise<void>((resolve) =>
    child.once("exit", () => {
      process.off("exit", orphaned);
      resolve();
    }),
  );
  for (const stream of [child.stdout, child.stderr]) stream.on("data", (chunk: Buffer) => output.push(...chunk.toString("utf8").split("\n").filter(Boolean)));

  const command = (line: string) =>
    new Promise<string>((resolve, reject) => {
      const socket = connect(options.socket);
      let answer = "";
      socket.setEncoding("utf8");
      socket.on("data", (chunk: string) => (answer += chunk));
      socket.on("end", () => resolve(answer));
      socket.on("error", reject);
      socket.end(`${line}\n`);
    });
  const serverStates = async () => {
    const csv = await command("show stat");
    const [header, ...rows] = csv.replace(/^# /, "").trim().split("\n");
    const columns = header.split(",");
    const states: Record<string, string> = {};
    for (const row of rows.map((r) => r.split(","))) {
      const proxy = row[columns.indexOf("pxname")];
      const server = row[columns.indexOf("svname")];
      if (proxy === "passthrough" && server !== "FRONTEND" && server !== "BACKEND") states[server] = row[columns.indexOf("status")];
    }
    return states;
  };

  const haproxy: Haproxy = {
    url: `http://127.0.0.1:${options.port}`,
    output,
    serverStates,
    async waitFor(servers, state, timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      let last: Record<string, string> = {};
      while (Date.now() < deadline) {
        last = await serverStates().catch(() => ({}));
        if (servers.every((server) => last[server] === state)) return;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      throw new Error(`HAProxy did not see ${servers.join(", ")} ${state} within ${timeoutMs} ms: ${JSON.stringify(last)}`);
    },
    async stop() {
      child.kill("SIGTERM");
      await exited;
    },
  };
  // Up once its runtime API answers.
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`haproxy exited: ${output.join("\n")}`);
    if (await serverStates().then(() => true, () => false)) return haproxy;
    if (Date.now() > deadline) throw new Error(`haproxy did not start: ${output.join("\n")}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
