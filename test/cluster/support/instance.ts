import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { stringify } from "yaml";
import type { ConfigInput } from "../../../src/config/schema.js";

const bin = join(import.meta.dirname, "../../../bin/passthrough.js");

/**
 * One gateway instance of a cluster: `passthrough serve` in a child process, on a fixed port
 * and with a configuration file of its own, so that it can be killed and started again as the
 * same instance (same port, same spool) behind the load balancer.
 */
export interface Instance {
  readonly name: string;
  readonly port: number;
  readonly configFile: string;
  /** Every line the current and earlier processes wrote to standard output (JSON logs) and standard error. */
  readonly stdout: string[];
  readonly stderr: string[];
  running(): boolean;
  /** Starts the process; resolves once it logs that it listens. */
  start(): Promise<void>;
  /** Sends SIGKILL and resolves once the process is gone. */
  kill(): Promise<void>;
  /** Sends SIGTERM and resolves with the exit code once the process is gone (SIGKILL after `graceMs`). */
  terminate(graceMs?: number): Promise<number | null>;
}

export function defineInstance(name: string, port: number, folder: string, config: ConfigInput, env: NodeJS.ProcessEnv = {}): Instance {
  const configFile = join(folder, `${name}.yaml`);
  writeFileSync(configFile, stringify({ ...config, server: { ...config.server, port, instanceId: name } }));
  const stdout: string[] = [];
  const stderr: string[] = [];
  let child: ChildProcess | undefined;
  let exited: Promise<number | null> = Promise.resolve(null);

  const lines = (into: string[]) => {
    let rest = "";
    return (chunk: Buffer) => {
      const parts = (rest + chunk.toString("utf8")).split("\n");
      rest = parts.pop() ?? "";
      into.push(...parts.filter(Boolean));
    };
  };

  return {
    name,
    port,
    configFile,
    stdout,
    stderr,
    running: () => child !== undefined && child.exitCode === null && child.signalCode === null,
    async start() {
      const from = stdout.length;
      const process_ = spawn(process.execPath, [bin, "serve", "--config", configFile], {
        cwd: folder,
        env: { PATH: process.env.PATH, ...env },
        stdio: ["ignore", "pipe", "pipe"],
      });
      child = process_;
      // A test process that dies leaves no instance behind.
      const orphaned = () => process_.kill("SIGKILL");
      process.once("exit", orphaned);
      exited = new Promise((resolve) =>
        process_.once("exit", (code) => {
          process.off("exit", orphaned);
          resolve(code);
        }),
      );
      process_.stdout!.on("data", lines(stdout));
      process_.stderr!.on("data", lines(stderr));
      const deadline = Date.now() + 60_000;
      while (!stdout.slice(from).some((line) => line.includes('"passthrough listening"'))) {
        if (process_.exitCode !== null) throw new Error(`${name} exited before listening: ${stderr.slice(-5).join("\n")}`);
        if (Date.now() > deadline) throw new Error(`${name} did not start within 60 s: ${stderr.slice(-5).join("\n")}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    async kill() {
      child?.kill("SIGKILL");
      await exited;
    },
    async terminate(graceMs = 20_000) {
      if (!child || child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child?.kill("SIGKILL"), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
