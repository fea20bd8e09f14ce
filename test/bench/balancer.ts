// HAProxy for the cluster scenario: deploy/haproxy.cfg as the README deploys it, in front of
// gateway instances on this machine, started in its own process group like every bench child.
import { spawnSync, type ChildProcess } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { freePort, spawnTracked, stopChild } from "./proc.js";

export interface Balancer {
  child: ChildProcess;
  port: number;
}

/** Undefined when `haproxy` runs, else why not. */
export function haproxyMissing(): string | undefined {
  const result = spawnSync("haproxy", ["-v"]);
  return result.error ? `haproxy cannot be run (${(result.error as NodeJS.ErrnoException).code}; apt-get install haproxy)` : undefined;
}

/** The `status` column of `show stat` for each server of the passthrough backend. */
function serverStates(socket: string): Promise<string[]> {
  return new Promise((resolve) => {
    const connection = net.connect(socket);
    let answer = "";
    connection.setEncoding("utf8");
    connection.on("data", (chunk: string) => (answer += chunk));
    connection.on("end", () => {
      const [header, ...rows] = answer.replace(/^# /, "").trim().split("\n");
      const columns = header.split(",");
      const at = (row: string[], name: string) => row[columns.indexOf(name)];
      resolve(rows.map((row) => row.split(",")).filter((row) => at(row, "pxname") === "passthrough" && !["FRONTEND", "BACKEND"].includes(at(row, "svname"))).map((row) => at(row, "status")));
    });
    connection.on("error", () => resolve([]));
    connection.end("show stat\n");
  });
}

/**
 * Starts HAProxy with deploy/haproxy.cfg in front of these instance ports (the configuration has
 * two server lines: one instance is named on both) and resolves once every server is UP.
 */
export async function startBalancer(root: string, workDir: string, name: string, instancePorts: [number, number]): Promise<Balancer> {
  const port = await freePort();
  const socket = path.join(workDir, `${name}.sock`);
  const child = spawnTracked("haproxy", ["-db", "-f", path.join(root, "deploy/haproxy.cfg")], {
    env: {
      PATH: process.env.PATH,
      PASSTHROUGH_LB_BIND: `127.0.0.1:${port}`,
      PASSTHROUGH_LB_STATS: socket,
      PASSTHROUGH_INSTANCE_1: `127.0.0.1:${instancePorts[0]}`,
      PASSTHROUGH_INSTANCE_2: `127.0.0.1:${instancePorts[1]}`,
    },
    // As deployed, it logs every request; the lines go nowhere.
    stdio: ["ignore", "ignore", "inherit"],
  });
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline && child.exitCode === null) {
    const states = await serverStates(socket);
    if (states.length === 2 && states.every((state) => state === "UP")) return { child, port };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await stopChild(child, 2000);
  throw new Error(`HAProxy (${name}) did not see its instances UP within 15 s`);
}
