import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import type { z } from "zod";
import { configSchema, type Config } from "./schema.js";

/** A configuration that cannot be used; the message names the field. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

export interface LoadConfigOptions {
  /** `--config FILE`; else PASSTHROUGH_CONFIG; else ./passthrough.yaml when it exists. */
  file?: string;
  /** The environment; read here and nowhere else. */
  env: NodeJS.ProcessEnv;
  /** Command-line overrides, applied last. */
  overrides?: { host?: string; port?: number };
}

export interface LoadedConfig {
  config: Config;
  /** The file read, if any. */
  file?: string;
}

/**
 * Reads, merges and validates the configuration once, at start-up. Precedence: command
 * line, then environment (DATABASE_URL, REDIS_URL, PASSTHROUGH_HOST, PASSTHROUGH_PORT,
 * PASSTHROUGH_LOG_LEVEL, PASSTHROUGH_LOG_PROMPT), then the file, then the defaults.
 */
export function loadConfig(options: LoadConfigOptions): LoadedConfig {
  const file = options.file ?? options.env.PASSTHROUGH_CONFIG ?? (existsSync("passthrough.yaml") ? "passthrough.yaml" : undefined);
  const raw = file === undefined ? {} : readConfigFile(file);
  const merged = applyOverrides(raw, options);
  return { config: parseConfig(merged), file: file === undefined ? undefined : resolve(file) };
}

/** Validates a configuration object; throws ConfigError naming the first bad fields. */
export function parseConfig(input: unknown): Config {
  const result = configSchema.safeParse(input ?? {});
  if (!result.success) {
    throw new ConfigError(`invalid configuration: ${formatIssues(result.error.issues)}`);
  }
  return result.data;
}

function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw new ConfigError(`cannot read configuration file ${file}: ${(error as NodeJS.ErrnoException).code ?? "error"}`);
  }
  let parsed: unknown;
  try {
    parsed = parseYaml(text);
  } catch (error) {
    throw new ConfigError(`configuration file ${file} is not valid YAML: ${(error as Error).message}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new ConfigError(`configuration file ${file} must hold a mapping at the top level`);
  }
  return parsed as Record<string, unknown>;
}

function applyOverrides(raw: Record<string, unknown>, options: LoadConfigOptions): Record<string, unknown> {
  const { env, overrides = {} } = options;
  // A section that is not a mapping is left as it is, for the schema to refuse by its name.
  for (const name of ["server", "database", "logging"]) {
    if (raw[name] != null && (typeof raw[name] !== "object" || Array.isArray(raw[name]))) return raw;
  }
  const server = { ...(raw.server as object) } as Record<string, unknown>;
  const database = { ...(raw.database as object) } as Record<string, unknown>;
  const logging = { ...(raw.logging as object) } as Record<string, unknown>;
  const limits = { ...(raw.limits as object) } as Record<string, unknown>;
  if (env.PASSTHROUGH_HOST) server.host = env.PASSTHROUGH_HOST;
  if (env.PASSTHROUGH_PORT) server.port = Number(env.PASSTHROUGH_PORT);
  if (env.DATABASE_URL) database.url = env.DATABASE_URL;
  if (env.REDIS_URL) limits.redisUrl = env.REDIS_URL;
  if (env.PASSTHROUGH_LOG_LEVEL) logging.level = env.PASSTHROUGH_LOG_LEVEL;
  if (env.PASSTHROUGH_LOG_PROMPT) logging.logPrompt = env.PASSTHROUGH_LOG_PROMPT === "true";
  if (overrides.host !== undefined) server.host = overrides.host;
  if (overrides.port !== undefined) server.port = overrides.port;
  return { ...raw, server, database, logging, limits };
}

function formatIssues(issues: z.core.$ZodIssue[]): string {
  return issues
    .slice(0, 5)
    .map((issue) => `${formatPath(issue.path) || "(top level)"}: ${issue.message}`)
    .join("; ");
}

function formatPath(path: PropertyKey[]): string {
  return path.reduce<string>(
    (out, key) => (typeof key === "number" ? `${out}[${key}]` : out ? `${out}.${String(key)}` : String(key)),
    "",
  );
}
