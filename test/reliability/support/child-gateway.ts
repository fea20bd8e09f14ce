import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { newApiKey, type NewApiKeyMaterial } from "../../../src/auth/api-keys.js";
import type { ConfigInput } from "../../../src/config/schema.js";
import { openStore } from "../../../src/store/open.js";

const bin = join(import.meta.dirname, "../../../bin/passthrough.js");

/** `passthrough serve` in a child process of its own, so that its memory can be measured alone. */
export interface ChildGateway {
  readonly url: string;
  /** Its working directory: its SQLite store is `passthrough.db` there, its journal spool under `data/`. */
  readonly dir: string;
  /** Headers that authenticate a call, with the key its store was given before it started. */
  readonly headers: { authorization: string };
  readonly pid: number;
  /** Every line written to standard output (JSON logs) and standard error so far. */
  readonly stdout: string[];
  readonly stderr: string[];
  /** Resident set size now, in bytes (VmRSS). */
  rssBytes(): number;
  /** Largest resident set size since start or since the last resetPeak(), in bytes (VmHWM). */
  peakRssBytes(): number;
  /** Resets the peak (writes 5 to /proc/PID/clear_refs), so that a phase can be measured alone. */
  resetPeak(): void;
  /** True while the process runs. */
  alive(): boolean;
  /** SIGTERM (or `signal`), then SIGKILL after `graceMs`; resolves with the exit code (null when killed). */
  stop(graceMs?: number, signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Starts the built CLI (`npm run build` must have run, as `npm test` does) with this
 * configuration on an ephemeral port, its SQLite store holding `apiKey`, and resolves once it
 * logs that it listens. With `restartIn` (a previous child's `dir`), it starts again there,
 * on the files that one left, with the key already in its store.
 */
export async function spawnGateway(config: ConfigInput, env: NodeJS.ProcessEnv = {}, apiKey: NewApiKeyMaterial = newApiKey(), restartIn?: string): Promise<ChildGateway> {
  const dir = restartIn ?? mkdtempSync(join(tmpdir(), "passthrough-child-"));
  const file = join(dir, "passthrough.yaml");
  const database = { url: `sqlite:${join(dir, "passthrough.db")}` };
  if (restartIn === undefined) {
    const store = await openStore(database.url);
    await store.createKey({ id: apiKey.id, digest: apiKey.digest, name: "reliability" });
    await store.close();
  }
  writeFileSync(file, stringify({ database, ...config, server: { port: 0, ...config.server } }));
  const child = spawn(process.execPath, [bin, "serve", "--config", file], {
    cwd: dir,
    env: { PATH: process.env.PATH, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const stdout: string[] = [];
  const stderr: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  let running = true;
  void exited.then(() => (running = false));
  const lines = (into: string[]) => {
    let rest = "";
    return (chunk: Buffer) => {
      const text = rest + chunk.toString("utf8");
      const parts = text.split("\n");
      rest = parts.pop() ?? "";
      into.push(...parts.filter(Boolean));
    };
  };
  child.stdout.on("data", lines(stdout));
  child.stderr.on("data", lines(stderr));

  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`gateway did not start: ${stderr.join("\n")}`)), 15_000);
    const look = () => {
      for (const line of stdout) {
        if (!line.includes("passthrough listening")) continue;
        clearTimeout(timer);
        resolve((JSON.parse(line) as { url: string }).url);
        return;
      }
      if (!running) {
        clearTimeout(timer);
        reject(new Error(`gateway exited before listening: ${stderr.join("\n")}`));
        return;
      }
      setTimeout(look, 20);
    };
    look();
  });

  const status = (field: string): number => {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(readFileSync(`/proc/${child.pid}/status`, "utf8"));
    return match === null ? 0 : Number(match[1]) * 1024;
  };
  return {
    url,
    dir,
    headers: { authorization: `Bearer ${apiKey.key.reveal()}` },
    pid: child.pid!,
    stdout,
    stderr,
    rssBytes: () => status("VmRSS"),
    peakRssBytes: () => status("VmHWM"),
    resetPeak: () => writeFileSync(`/proc/${child.pid}/clear_refs`, "5"),
    alive: () => running,
    async stop(graceMs = 5000, signal: NodeJS.Signals = "SIGTERM") {
      if (!running) return exited;
      child.kill(signal);
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
