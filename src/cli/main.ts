import { parseArgs } from "node:util";
import { ConnectError } from "@connectrpc/connect";
import { ConfigError, loadConfig } from "../config/load.js";
import { createLogger } from "../logging/logger.js";
import type { Secret } from "../config/secret.js";
import { startGateway } from "../server/gateway.js";
import { journalCommand } from "./journal.js";
import { keysCommand } from "./keys.js";

const USAGE = `Usage: passthrough <command> [options]

Commands:
  serve [--host H] [--port P]   serve every protocol on one port (default 127.0.0.1:8080)
  keys create|list|revoke|rotate  manage API keys (passthrough keys --help)
  journal show|list             read the journal of calls (passthrough journal --help)

Every command takes --config FILE (default: $PASSTHROUGH_CONFIG, else ./passthrough.yaml).`;

/** The `passthrough` command; returns the exit code. Reads process.env here, once, for all. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case "serve":
        return await serve(rest);
      case "keys":
        return await keysCommand(rest, process.env);
      case "journal":
        return await journalCommand(rest, process.env);
      case undefined:
      case "help":
      case "--help":
      case "-h":
        process.stderr.write(`${USAGE}\n`);
        return command === undefined ? 2 : 0;
      default:
        process.stderr.write(`passthrough: unknown command "${command}"\n${USAGE}\n`);
        return 2;
    }
  } catch (error) {
    const code: unknown = (error as { code?: unknown }).code;
    if (error instanceof ConfigError || (typeof code === "string" && code.startsWith("ERR_PARSE_ARGS"))) {
      process.stderr.write(`passthrough: ${(error as Error).message}\n`);
      return 2;
    }
    const { syscall, address, port } = error as NodeJS.ErrnoException & { address?: string; port?: number };
    if (syscall === "listen") {
      process.stderr.write(`passthrough: cannot listen on ${address}:${port}: ${String(code)}\n`);
      return 1;
    }
    // A store that cannot be opened: its description is plain, without SQL or a connection string.
    if (error instanceof ConnectError) {
      process.stderr.write(`passthrough: ${error.rawMessage}\n`);
      return 1;
    }
    throw error;
  }
}

async function serve(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { config: { type: "string" }, host: { type: "string" }, port: { type: "string" } },
    strict: true,
  });
  const port = values.port === undefined ? undefined : Number(values.port);
  if (port !== undefined && !(Number.isInteger(port) && port >= 0 && port <= 65535)) {
    throw new ConfigError(`--port: "${values.port}" is not a port number`);
  }
  const { config, file } = loadConfig({ file: values.config, env: process.env, overrides: { host: values.host, port } });
  const logger = createLogger({ level: config.logging.level, instance: config.server.instanceId });
  if (file) logger.info({ file }, "configuration loaded");
  // Listened for before the gateway starts: a SIGTERM right after "passthrough listening" must not find Node's default (exit at once).
  // Listened for until the end: a second signal must not kill the process before the journal and the sinks are flushed.
  let stopping: string | undefined;
  const stopSignal = new Promise<string>((resolve) => {
    const stop = (signal: string) => () => {
      if (stopping === undefined) resolve((stopping = signal));
      else logger.warn({ signal }, "already shutting down");
    };
    process.on("SIGTERM", stop("SIGTERM"));
    process.on("SIGINT", stop("SIGINT"));
  });
  const gateway = await startGateway({ config, env: process.env, logger, onFirstKey: announceFirstKey });
  // SIGHUP re-reads the logging settings (the logPrompt switch, the level) without a restart.
  process.on("SIGHUP", () => {
    try {
      const reloaded = loadConfig({ file: values.config, env: process.env, overrides: { host: values.host, port } });
      gateway.reconfigureLogging(reloaded.config.logging);
    } catch (error) {
      logger.error({ error: (error as Error).message }, "configuration not reloaded");
    }
  });

  const signal = await stopSignal;
  logger.info({ signal }, "shutting down");
  await gateway.close().catch((error: unknown) => logger.error({ err: error }, "shutdown failed"));
  logger.flush();
  return 0;
}

/** The first start's key, on standard error and never through the logger: the key alone on its line. */
function announceFirstKey(key: Secret): void {
  process.stderr.write(
    "passthrough: the key store was empty, so this API key was created; it is shown this once.\n" +
      "Send it as `authorization: Bearer <key>`; `passthrough keys create` makes more.\n" +
      `${key.reveal()}\n`,
  );
}
