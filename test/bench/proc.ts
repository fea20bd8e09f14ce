// Child processes of the benchmark (spawned in their own process group, all killed on exit) and
// what /proc says about them: CPU time, current and peak RSS.
import { execFileSync, fork, spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import { availableParallelism } from "node:os";

const clockTicks = ((): number => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

/** User + system CPU time of a process (all its threads), in microseconds; undefined once it is gone. */
export function cpuMicros(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after "(comm) ": state is field 3, utime field 14, stime field 15.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / clockTicks;
  } catch {
    return undefined;
  }
}

/** Current (VmRSS) and peak (VmHWM) resident set size, in kB. */
export function memoryKb(pid: number): { rss: number; peak: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const rss = /VmRSS:\s+(\d+)/.exec(status);
    const peak = /VmHWM:\s+(\d+)/.exec(status);
    return { rss: Number(rss?.[1] ?? 0), peak: Number(peak?.[1] ?? 0) };
  } catch {
    return undefined;
  }
}

/** Resets VmHWM to the current RSS (Linux: "5" > clear_refs), so the next peak belongs to one run. */
export function resetPeakRss(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

/** Polls VmRSS every intervalMs and keeps the maximum. */
export function sampleRss(pid: number, intervalMs = 100): { stop(): number } {
  let maxKb = memoryKb(pid)?.rss ?? 0;
  const timer = setInterval(() => {
    maxKb = Math.max(maxKb, memoryKb(pid)?.rss ?? 0);
  }, intervalMs);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      maxKb = Math.max(maxKb, memoryKb(pid)?.rss ?? 0);
      return maxKb;
    },
  };
}

const children = new Set<ChildProcess>();

/**
 * CPU time (µs) spent on the whole machine, and by this process and its children, since boot:
 * the difference between two readings is the load from outside the benchmark.
 */
export function cpuReading(): { machineUs: number; oursUs: number; at: number } {
  let machineUs = Number.NaN;
  try {
    const [user, nice, system, , , irq, softirq, steal] = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
    machineUs = ((user + nice + system + irq + softirq + steal) * 1e6) / clockTicks;
  } catch {
    // not Linux
  }
  let oursUs = cpuMicros(process.pid) ?? 0;
  for (const child of children) if (child.pid !== undefined) oursUs += cpuMicros(child.pid) ?? 0;
  return { machineUs, oursUs, at: performance.now() };
}

/** Share (%) of all cores busy with work that is not the benchmark's between two readings. */
export function foreignCpuPercent(start: { machineUs: number; oursUs: number; at: number }, end: { machineUs: number; oursUs: number; at: number }): number {
  const wallUs = (end.at - start.at) * 1000;
  const cores = Math.max(1, availableParallelism());
  return (Math.max(0, end.machineUs - start.machineUs - (end.oursUs - start.oursUs)) / (wallUs * cores)) * 100;
}

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

/** Kills every child still running (their whole process groups). Safe to call from an exit handler. */
export function killAllChildren(signal: NodeJS.Signals = "SIGKILL"): void {
  for (const child of children) killGroup(child, signal);
}

/** Asks a child to stop (SIGTERM), then kills it after graceMs. */
export async function stopChild(child: ChildProcess, graceMs = 3000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  killGroup(child, "SIGTERM");
  const timer = setTimeout(() => killGroup(child, "SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

process.once("exit", () => killAllChildren("SIGKILL"));

/** Spawns a process in its own group, tracked for cleanup. */
export function spawnTracked(command: string, args: string[], options: SpawnOptions): ChildProcess {
  return track(spawn(command, args, { ...options, detached: true }));
}

/** Spawns a server script that prints {"port":N} on its first stdout line; resolves with the port. */
export async function startPortPrinter(
  args: string[],
  options: { name: string; timeoutMs?: number; cwd?: string },
): Promise<{ child: ChildProcess; port: number }> {
  const child = spawnTracked(process.execPath, args, { cwd: options.cwd, stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((resolve, reject) => {
    let buffered = "";
    const timer = setTimeout(() => reject(new Error(`${options.name} did not print its port in time`)), options.timeoutMs ?? 15_000);
    child.stdout?.on("data", (data: Buffer) => {
      buffered += data.toString();
      const newline = buffered.indexOf("\n");
      if (newline < 0) return;
      clearTimeout(timer);
      try {
        resolve((JSON.parse(buffered.slice(0, newline)) as { port: number }).port);
      } catch {
        reject(new Error(`${options.name} printed ${buffered.slice(0, newline)} instead of its port`));
      }
    });
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${options.name} exited early (code ${code}, signal ${signal})`));
    });
  });
  child.stdout?.resume();
  return { child, port };
}

/** A port that was free a moment ago (listen on 0, read it, close). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** IPC carries JSON, where NaN (an empty percentile) becomes null: turn it back. */
function nullToNaN(value: unknown): unknown {
  if (value === null) return Number.NaN;
  if (Array.isArray(value)) return value.map(nullToNaN);
  if (typeof value === "object" && value) return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, nullToNaN(item)]));
  return value;
}

/** Messages a load child sends over IPC: "start" when measuring begins, then its result. */
export type LoadMessage = { type: "start" } | { type: "result"; result: unknown } | { type: "error"; message: string };

/**
 * Runs a load-generator script (TypeScript, through tsx) in its own process with params as argv[2];
 * calls onStart when it begins measuring and onEnd as soon as its result arrives, each with the
 * child's pid.
 */
export async function runLoadChild<T>(
  script: string,
  params: unknown,
  hooks: { onStart(childPid: number | undefined): void; onEnd(childPid: number | undefined): void },
  timeoutMs: number,
): Promise<T> {
  const child = track(
    fork(script, [JSON.stringify(params)], {
      execArgv: ["--import", "tsx"],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      detached: true,
    }),
  );
  try {
    return await new Promise<T>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(() => {
        settled = true;
        reject(new Error(`load generator ${script} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      child.on("message", (message: LoadMessage) => {
        if (message.type === "start") hooks.onStart(child.pid);
        if (message.type === "result" && !settled) {
          hooks.onEnd(child.pid);
          settled = true;
          clearTimeout(timer);
          resolve(nullToNaN(message.result) as T);
        }
        if (message.type === "error" && !settled) {
          settled = true;
          clearTimeout(timer);
          reject(new Error(message.message));
        }
      });
      child.once("exit", (code, signal) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(new Error(`load generator ${script} exited (code ${code}, signal ${signal}) without a result`));
      });
    });
  } finally {
    await stopChild(child, 1000);
  }
}
