import { Writable } from "node:stream";
import { parseConfig } from "../../src/config/load.js";
import type { ConfigInput } from "../../src/config/schema.js";
import { createLogger } from "../../src/logging/logger.js";
import { startGateway, type Gateway, type GatewayOptions } from "../../src/server/gateway.js";

export interface TestGateway extends Gateway {
  /** Every JSON log line the gateway wrote. */
  readonly logs: string[];
}

/**
 * The real gateway on an ephemeral port, its logs captured in memory. PASSTHROUGH_TEST_FAST_PATHS=off
 * (the "fast paths off" project in vitest.config.ts) serves every call through connect-node.
 */
export async function startTestGateway(config: ConfigInput, env: NodeJS.ProcessEnv = {}, calls?: GatewayOptions["calls"]): Promise<TestGateway> {
  const logs: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      logs.push(...String(chunk).split("\n").filter(Boolean));
      done();
    },
  });
  const fastPaths = process.env.PASSTHROUGH_TEST_FAST_PATHS !== "off";
  const parsed = parseConfig({ ...config, server: { port: 0, shutdownTimeoutMs: 2000, fastPaths, ...config.server } });
  const logger = createLogger({ level: config.logging?.level ?? "info", destination });
  const gateway = await startGateway({ config: parsed, env, logger, calls });
  return Object.assign(gateway, { logs });
}
