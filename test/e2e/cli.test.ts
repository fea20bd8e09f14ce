import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { completion, delay, json, startFakeProvider, type FakeProvider } from "../support/fake-provider.js";

const bin = join(import.meta.dirname, "../../bin/passthrough.js");
const dir = mkdtempSync(join(tmpdir(), "passthrough-cli-"));

/** A configuration file; each has a key store of its own unless it names one. */
function writeConfig(name: string, yaml: string): string {
  const file = join(dir, name);
  writeFileSync(file, /^database:/m.test(yaml) ? yaml : `${yaml}database: { url: "sqlite:./${name}.db" }\n`);
  return file;
}

/** Runs the CLI to its end. */
function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd: dir, env: { PATH: process.env.PATH } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => (stderr += chunk));
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

interface Served {
  child: ChildProcessWithoutNullStreams;
  url: string;
  exited: Promise<number | null>;
  /** Everything written to standard output so far. */
  output(): string;
  /** The key printed on standard error by a first start, as an authorization header. */
  auth: { authorization: string };
}

/** Starts `passthrough serve` and resolves with its URL once it logs that it listens. */
function serve(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Served> {
  const child = spawn(process.execPath, [bin, "serve", ...args], { cwd: dir, env: { PATH: process.env.PATH, ...env } });
  const exited = new Promise<number | null>((resolve) => child.on("close", resolve));
  return new Promise((resolve, reject) => {
    let out = "";
    let err = "";
    child.stderr.on("data", (chunk) => (err += chunk));
    child.stdout.on("data", (chunk) => {
      out += chunk;
      const match = /"url":"(http:\/\/[^"]+)"/.exec(out);
      const key = /^(ptk_\S+)$/m.exec(err)?.[1] ?? "";
      if (match) resolve({ child, url: match[1], exited, output: () => out, auth: { authorization: `Bearer ${key}` } });
    });
    exited.then(() => reject(new Error(`serve exited early: ${out}`)));
  });
}

let provider: FakeProvider;
beforeAll(async () => {
  provider = await startFakeProvider();
});
afterAll(() => provider?.close());

describe("passthrough", () => {
  it("names every command in its usage", async () => {
    const result = await run(["--help"]);
    expect(result.code).toBe(0);
    for (const command of ["serve", "keys", "journal show|list"]) expect(result.stderr).toContain(`  ${command}`);
  });
});

describe("passthrough serve", () => {
  it.each([
    { name: "a bad URL", yaml: "providers:\n  - { name: local, baseUrl: 'not a url' }\n", field: "providers[0].baseUrl" },
    { name: "an unknown key", yaml: "server: { port: 0, colour: blue }\n", field: "server" },
    { name: "a wrong type", yaml: "server: { port: eighty }\n", field: "server.port" },
    { name: "a provider that is not built in without baseUrl", yaml: "providers:\n  - { name: mine }\n", field: "providers[0].baseUrl" },
  ])("refuses a configuration with $name, naming the field", async ({ yaml, field }) => {
    const config = writeConfig(`bad-${field}.yaml`, yaml);
    const result = await run(["serve", "--config", config]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(field);
    expect(result.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it("says so cleanly when its port is taken", async () => {
    const blocker = createServer().listen(0, "127.0.0.1");
    await new Promise((resolve) => blocker.once("listening", resolve));
    const port = (blocker.address() as { port: number }).port;
    const result = await run(["serve", "--port", String(port)]);
    blocker.close();
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("EADDRINUSE");
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it("serves, finishes an in-flight call on SIGTERM, then exits 0", async () => {
    const config = writeConfig("ok.yaml", `server: { port: 0 }\nproviders:\n  - { name: local, baseUrl: "${provider.url}" }\n`);
    const { child, url, exited, auth } = await serve(["--config", config]);
    expect((await fetch(`${url}/healthz`)).status).toBe(200);

    provider.reply(delay(600, json(200, completion("m"))));
    const inFlight = fetch(`${url}/api/v1/prompts/passthrough/local/`, { method: "POST", body: "{}", headers: auth });
    await provider.waitForRequests(1);
    child.kill("SIGTERM");
    const response = await inFlight;
    expect(response.status).toBe(200);
    expect(await exited).toBe(0);
  });

  it("creates one key on its first start and shows it once, alone on a line of standard error; a call without it is refused", async () => {
    const config = writeConfig("first.yaml", `server: { port: 0 }\ndatabase: { url: "sqlite:./first/passthrough.db" }\nproviders:\n  - { name: local, baseUrl: "${provider.url}" }\n`);
    const first = await serve(["--config", config]);
    expect(first.auth.authorization).toMatch(/^Bearer ptk_[a-z2-7]{16}_[A-Za-z0-9_-]{43}$/);
    expect(first.output()).not.toContain(first.auth.authorization.slice(7));
    provider.reply(json(200, completion("m")));
    expect((await fetch(`${first.url}/api/v1/prompts/passthrough/local/`, { method: "POST", body: "{}", headers: first.auth })).status).toBe(200);
    const refused = await fetch(`${first.url}/api/v1/prompts/passthrough/local/`, { method: "POST", body: "{}" });
    expect(refused.status).toBe(401);
    expect(refused.headers.get("www-authenticate")).toContain("Bearer");
    first.child.kill("SIGTERM");
    expect(await first.exited).toBe(0);
    // The second start finds a key and creates none.
    const second = await serve(["--config", config]);
    expect(second.auth.authorization).toBe("Bearer ");
    second.child.kill("SIGTERM");
    expect(await second.exited).toBe(0);
  });

  it("names itself, server.instanceId, on every log line and in its metrics", async () => {
    const config = writeConfig("named.yaml", `server: { port: 0, instanceId: edge-7 }\nproviders:\n  - { name: local, baseUrl: "${provider.url}" }\n`);
    const served = await serve(["--config", config]);
    provider.reply(json(200, completion("m")));
    await (await fetch(`${served.url}/api/v1/prompts/passthrough/nope/`, { method: "POST", body: "{}", headers: served.auth })).arrayBuffer();
    expect(await (await fetch(`${served.url}/metrics`)).text()).toMatch(/^passthrough_instance_info\{instance_id="edge-7"\} 1$/m);
    served.child.kill("SIGTERM");
    expect(await served.exited).toBe(0);
    // Standard output also carries the default log sink's signal events, which name it as their source.
    const lines = served.output().trim().split("\n").map((line) => JSON.parse(line) as { instance?: string; msg?: string; source?: string });
    expect(lines.filter((line) => line.msg === undefined).map((event) => event.source)).toEqual(["passthrough/edge-7", "passthrough/edge-7", "passthrough/edge-7"]);
    expect(lines.map((line) => line.msg)).toEqual(expect.arrayContaining(["configuration loaded", "passthrough listening", "call failed", "shutting down", "passthrough stopped"]));
    expect(lines.filter((line) => line.msg !== undefined && line.instance !== "edge-7")).toEqual([]);
  });

  it("takes --host and --port over the file", async () => {
    const config = writeConfig("port.yaml", "server: { port: 1 }\n");
    const { child, url, exited } = await serve(["--config", config, "--port", "0", "--host", "127.0.0.1"]);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(url).not.toMatch(/:1$/);
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  });

  it("logs prompts only while the logPrompt switch is on, flipped by SIGHUP without a restart", async () => {
    const yaml = (on: boolean) => `server: { port: 0 }\nlogging: { logPrompt: ${on} }\nproviders:\n  - { name: local, baseUrl: "${provider.url}", apiKeyEnv: LOCAL_KEY }\n`;
    const config = writeConfig("switch.yaml", yaml(false));
    const served = await serve(["--config", config], { LOCAL_KEY: "sk-never-logged" });
    const ask = (word: string) =>
      fetch(`${served.url}/api/v1/prompts/passthrough/local/`, { method: "POST", headers: served.auth, body: JSON.stringify({ model: "m", messages: [{ role: "user", content: word }] }) });

    expect((await ask("first-secret-word")).status).toBe(200);
    writeConfig("switch.yaml", yaml(true));
    served.child.kill("SIGHUP");
    await waitFor(() => served.output().includes("logging reconfigured"));
    expect((await ask("second-word")).status).toBe(200);
    await waitFor(() => served.output().includes("second-word"));

    served.child.kill("SIGTERM");
    expect(await served.exited).toBe(0);
    const prompts = served.output().split("\n").filter((line) => line.includes('"msg":"prompt"'));
    expect(prompts).toHaveLength(1);
    expect(prompts[0]).toContain("second-word");
    expect(served.output()).not.toContain("first-secret-word");
    expect(served.output()).not.toContain("sk-never-logged");
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
