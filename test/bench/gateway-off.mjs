// The benchmark's "gateway, all off" target: the built gateway with authentication and the journal
// switched off (options the configuration file cannot set), and the config's `signals.sinks: []`;
// with --auth, its "auth only" target: authentication on, the journal and the sinks still off.
// Plain JavaScript, so that like `passthrough serve` it runs without a loader thread.
// Usage: node test/bench/gateway-off.mjs --config FILE --port N [--auth]
import { parseArgs } from "node:util";
import { loadConfig } from "../../dist/config/load.js";
import { createLogger } from "../../dist/logging/logger.js";
import { startGateway } from "../../dist/server/gateway.js";

const { values } = parseArgs({ options: { config: { type: "string" }, port: { type: "string" }, auth: { type: "boolean", default: false } }, strict: true });
const port = Number(values.port);
if (!values.config || !Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write("usage: node test/bench/gateway-off.mjs --config FILE --port N [--auth]\n");
  process.exit(2);
}

const { config } = loadConfig({ file: values.config, env: process.env, overrides: { port } });
const logger = createLogger({ level: config.logging.level });
// `journal: false` skips the journal writer; a gateway without that option ignores it.
const gateway = await startGateway({ config, env: process.env, logger, authenticate: values.auth, journal: false });

process.once("SIGTERM", () => {
  gateway.close().then(
    () => {
      logger.flush();
      process.exit(0);
    },
    (error) => {
      logger.error({ err: error }, "shutdown failed");
      logger.flush();
      process.exit(1);
    },
  );
});
