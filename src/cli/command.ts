import { ConnectError, Code } from "@connectrpc/connect";
import { ConfigError, loadConfig } from "../config/load.js";
import { openStore } from "../store/open.js";
import type { Store } from "../store/store.js";

/** A command line that cannot be run: exit code 2, like a bad configuration. */
export class UsageError extends Error {}

export type Subcommand = (argv: string[], env: NodeJS.ProcessEnv) => Promise<number>;

/**
 * Runs `passthrough <group> <subcommand> …`; returns the exit code: 2 for a usage or
 * configuration error, 1 when the store fails or what was asked for does not exist.
 */
export async function runSubcommand(group: string, usage: string, subcommands: Record<string, Subcommand>, argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "help" || command === "--help" || command === "-h") {
    process.stderr.write(`${usage}\n`);
    return command === undefined ? 2 : 0;
  }
  try {
    const run = Object.hasOwn(subcommands, command) ? subcommands[command] : undefined;
    if (run === undefined) throw new UsageError(`unknown command "${group} ${command}" (see passthrough ${group} --help)`);
    return await run(rest, env);
  } catch (error) {
    if (error instanceof ConnectError) {
      process.stderr.write(`passthrough: ${describeFailure(error)}\n`);
      return 1;
    }
    const code = (error as { code?: unknown }).code;
    if (error instanceof UsageError || error instanceof ConfigError || (typeof code === "string" && code.startsWith("ERR_PARSE_ARGS"))) {
      process.stderr.write(`passthrough: ${(error as Error).message.replace(/\s*\n\s*/g, " ")}\n`);
      return 2;
    }
    throw error;
  }
}

/** Opens the store of the configuration (database.url, DATABASE_URL; migrations applied), uses it, closes it. */
export async function withStore<T>(configFile: string | boolean | undefined, env: NodeJS.ProcessEnv, use: (store: Store) => Promise<T>): Promise<T> {
  const { config } = loadConfig({ file: typeof configFile === "string" ? configFile : undefined, env });
  const store = await openStore(config.database.url, { schema: config.database.schema });
  try {
    return await use(store);
  } finally {
    await store.close();
  }
}

/** A store failure in one line: the description, and for UNAVAILABLE the driver's reason with any password masked. */
function describeFailure(error: ConnectError): string {
  const cause = error.cause instanceof Error ? error.cause.message.split("\n")[0] : undefined;
  if (error.code !== Code.Unavailable || !cause) return error.rawMessage;
  return `${error.rawMessage} (${cause.replace(/(\/\/[^:/@\s]*:)[^@\s]*@/g, "$1***@")})`;
}

export const isoTime = (date: Date) => date.toISOString().replace(/\.\d{3}Z$/, "Z");

/** Text from the store as one table cell: control characters (a terminal escape, say) become `?`. */
export const cell = (text: string) => text.replace(/\p{Cc}/gu, "?");

/** Columns padded to their widest cell, two spaces apart. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i].length)));
  return [header, ...rows].map((row) => row.map((text, i) => text.padEnd(widths[i])).join("  ").trimEnd()).join("\n") + "\n";
}
