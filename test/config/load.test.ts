import { mkdtempSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, parseConfig } from "../../src/config/load.js";

const dir = mkdtempSync(join(tmpdir(), "passthrough-config-"));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

describe("configuration", () => {
  it("has every default when nothing is given", () => {
    const config = parseConfig({});
    expect(config.server).toMatchObject({ host: "127.0.0.1", port: 8080, maxBodyBytes: 8 * 1024 * 1024, fastPaths: true, maxRecordedBytes: 32 * 1024 * 1024, drainDelayMs: 0 });
    expect(config.server.instanceId).toBe(`${hostname()}-8080`);
    expect(config.auth.cacheTtlMs).toBe(5000);
    expect(config.database.url).toBe("sqlite:./data/passthrough.db");
    expect(config.upstream).toEqual({
      timeoutMs: 120_000,
      retries: 2,
      retryAfterCapMs: 10_000,
      backoffBaseMs: 200,
      connectionsPerProvider: 1024,
      maxAnswerBytes: 32 * 1024 * 1024,
      maxEventBytes: 8 * 1024 * 1024,
    });
    expect(config.logging).toEqual({ level: "info", logPrompt: false });
    expect(config.signals.sinks).toEqual([{ type: "log" }]);
  });

  it("accepts SPEC section 10's example file", () => {
    const config = loadConfig({
      file: file(
        "spec.yaml",
        `server:   { host: 127.0.0.1, port: 8080 }
database: { url: "sqlite:./data/passthrough.db" }
providers:
  - { name: local, baseUrl: "http://127.0.0.1:9000/v1", apiKeyEnv: LOCAL_KEY, timeoutMs: 30000 }
auth:
  google: { audiences: ["aud"], certsFile: certs.pem }
  cors:   { origins: ["http://localhost:5173"] }
signals:
  includeBodies: true
  sinks:
    - { type: log }
    - { type: webhook, url: "http://127.0.0.1:9/hook", secret: "s" }
    - { type: nats, url: "nats://127.0.0.1:4222", subject: "passthrough.signals" }
    - { type: redis, url: "redis://127.0.0.1:6379", stream: "passthrough:signals" }
    - { type: module, path: "./my-sink.js" }
logging:  { level: info, logPrompt: false }
`,
      ),
      env: {},
    }).config;
    expect(config.providers[0]).toMatchObject({ name: "local", timeoutMs: 30000 });
    expect(config.signals.sinks).toHaveLength(5);
  });

  it("applies the environment over the file, and the command line over both", () => {
    const path = file("env.yaml", "server: { host: 0.0.0.0, port: 1000 }\nlogging: { level: warn }\n");
    const fromEnv = loadConfig({ file: path, env: { PASSTHROUGH_PORT: "2000", DATABASE_URL: "postgres://db/x", PASSTHROUGH_LOG_LEVEL: "debug" } }).config;
    expect(fromEnv.server).toMatchObject({ host: "0.0.0.0", port: 2000 });
    expect(fromEnv.database.url).toBe("postgres://db/x");
    expect(fromEnv.logging.level).toBe("debug");
    const fromFlags = loadConfig({ file: path, env: { PASSTHROUGH_PORT: "2000" }, overrides: { port: 3000, host: "127.0.0.1" } }).config;
    expect(fromFlags.server).toMatchObject({ host: "127.0.0.1", port: 3000 });
  });

  it("names an instance on port 0 apart from every other, since its port is not known yet", () => {
    const names = [parseConfig({ server: { port: 0 } }), parseConfig({ server: { port: 0 } })].map((config) => config.server.instanceId);
    for (const name of names) expect(name).toMatch(new RegExp(`^${hostname().replace(/[.]/g, "\\.")}-[0-9a-f]{8}$`));
    expect(names[0]).not.toBe(names[1]);
    expect(parseConfig({ server: { port: 0, instanceId: "edge-1" } }).server.instanceId).toBe("edge-1");
  });

  it("reads PASSTHROUGH_CONFIG when no file is named", () => {
    const path = file("named.yaml", "server: { port: 4321 }\n");
    expect(loadConfig({ env: { PASSTHROUGH_CONFIG: path } }).config.server.port).toBe(4321);
  });

  it.each([
    ["an unknown top-level key", "colour: blue\n", 'Unrecognized key: "colour"'],
    ["an unknown nested key", "server: { prot: 1 }\n", "server"],
    ["a port out of range", "server: { port: 70000 }\n", "server.port"],
    ["a negative drain delay", "server: { drainDelayMs: -1 }\n", "server.drainDelayMs"],
    ["a provider name with a slash", "providers:\n  - { name: 'a/b', baseUrl: 'http://h/v1' }\n", "providers[0].name"],
    ["a non-http base URL", "providers:\n  - { name: a, baseUrl: 'file:///etc/passwd' }\n", "providers[0].baseUrl"],
    ["a sink of no known type", "signals: { sinks: [{ type: kafka }] }\n", "signals.sinks[0]"],
    ["YAML that is not a mapping", "- a\n- b\n", "mapping"],
    ["invalid YAML", "server: { port: \n", "not valid YAML"],
  ])("refuses %s with a message naming it", (_name, text, expected) => {
    const path = file(`bad-${Math.random()}.yaml`, text);
    expect(() => loadConfig({ file: path, env: {} })).toThrow(ConfigError);
    expect(() => loadConfig({ file: path, env: {} })).toThrow(expected);
  });

  it("says which file it cannot read", () => {
    expect(() => loadConfig({ file: join(dir, "missing.yaml"), env: {} })).toThrow(/missing\.yaml: ENOENT/);
  });
});
