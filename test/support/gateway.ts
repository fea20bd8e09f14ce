import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { parseConfig } from "../../src/config/load.js";
import type { ConfigInput } from "../../src/config/schema.js";
import type { Secret } from "../../src/config/secret.js";
import { createLogger } from "../../src/logging/logger.js";
import { startGateway, type Gateway, type GatewayOptions } from "../../src/server/gateway.js";

export interface TestGateway extends Gateway {
  /** Every JSON log line the gateway wrote. */
  readonly logs: string[];
  /** The key created on its first start, when it authenticates and its store was empty. */
  readonly firstKey?: string;
}

export interface TestGatewayOptions {
  /** Authenticate calls; off by default, for the suites that are not about authentication. */
  authenticate?: boolean;
  /** Sinks of the test's own, besides the configured ones (none unless the config names some). */
  signalSinks?: GatewayOptions["signalSinks"];
  /** Traces through this provider (the test's, with an in-memory exporter). */
  tracerProvider?: GatewayOptions["tracerProvider"];
}

/**
 * The real gateway on an ephemeral port, its logs captured in memory, its SQLite store in a
 * folder of its own unless the config names one. PASSTHROUGH_TEST_FAST_PATHS=off (the "fast
 * paths off" project in vitest.config.ts) serves every call through connect-node.
 */
export async function startTestGateway(
  config: ConfigInput,
  env: NodeJS.ProcessEnv = {},
  calls?: GatewayOptions["calls"],
  { authenticate = false, signalSinks, tracerProvider }: TestGatewayOptions = {},
): Promise<TestGateway> {
  const logs: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      logs.push(...String(chunk).split("\n").filter(Boolean));
      done();
    },
  });
  const fastPaths = process.env.PASSTHROUGH_TEST_FAST_PATHS !== "off";
  const folder = mkdtempSync(join(tmpdir(), "passthrough-gateway-"));
  const database = config.database ?? { url: `sqlite:${join(folder, "passthrough.db")}` };
  const parsed = parseConfig({
    ...config,
    database,
    server: { port: 0, shutdownTimeoutMs: 2000, fastPaths, ...config.server },
    journal: { spoolDir: join(folder, "journal-spool"), ...config.journal },
    signals: { sinks: [], ...config.signals },
  });
  const logger = createLogger({ level: config.logging?.level ?? "info", destination });
  let firstKey: string | undefined;
  const gateway = await startGateway({ config: parsed, env, logger, calls, authenticate, signalSinks, tracerProvider, onFirstKey: (key: Secret) => (firstKey = key.reveal()) });
  return Object.assign(gateway, { logs, firstKey });
}
