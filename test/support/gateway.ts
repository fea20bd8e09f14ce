import { Writable } from "node:stream";
import { parseConfig } from "../../src/config/load.js";
import type { ConfigInput } from "../../src/config/schema.js";
import { createLogger } from "../../src/logging/logger.js";
import { startGateway, type Gateway } from "../../src/server/gateway.js";

export interface TestGateway extends Gateway {
  /** Every JSON log line the gateway wrote. */
  readonly logs: string[];
}

/** The real gateway on an ephemeral port, its logs captured in memory. */
export async function startTestGateway(config: ConfigInput, env: NodeJS.ProcessEnv = {}): Promise<TestGateway> {
  const logs: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      logs.push(...String(chunk).split("\n").filter(Boolean));
      done();
    },
  });
  const parsed = parseConfig({ ...config, server: { port: 0, shutdownTimeoutMs: 2000, ...config.server } });
  const logger = createLogger({ level: config.logging?.level ?? "info", destination });
  const gateway = await startGateway({ config: parsed, env, logger });
  return Object.assign(gateway, { logs });
}
