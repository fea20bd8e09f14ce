import { parseArgs } from "node:util";
import { Code, ConnectError } from "@connectrpc/connect";
import { API_KEY_ID_PATTERN, newApiKey, parseApiKey } from "../auth/api-keys.js";
import type { ApiKeySummary, Store } from "../store/store.js";
import { cell, isoTime, runSubcommand, table, UsageError, withStore, type Subcommand } from "./command.js";

export const KEYS_USAGE = `Usage: passthrough keys <command> [options]

Commands:
  create --name N [--providers a,b] [--expires-in 30d] [--rpm N] [--tpm N] [--admin]
                            create a key; prints it, once, alone on standard output
  list [--json]             every key, without secrets
  revoke ID                 revoke a key
  rotate ID [--grace 24h]   a new secret for the same key, printed alone on standard output;
                            the previous secret keeps working until the grace ends

Every command takes --config FILE and opens the store of database.url (DATABASE_URL).
Durations: 90s, 15m, 24h, 30d.`;

const COMMANDS: Record<string, Subcommand> = { create, list, revoke, rotate };

/**
 * `passthrough keys …`; returns the exit code: 2 for a usage or configuration error, 1 when the
 * store fails or the key does not exist. Only a new key ever goes to standard output.
 */
export function keysCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runSubcommand("keys", KEYS_USAGE, COMMANDS, argv, env);
}

async function create(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parse(argv, {
    name: { type: "string" },
    providers: { type: "string" },
    "expires-in": { type: "string" },
    rpm: { type: "string" },
    tpm: { type: "string" },
    admin: { type: "boolean" },
  });
  const name = values.name?.trim();
  if (!name) throw new UsageError("keys create: --name is required");
  if (name.length > 200 || /\p{Cc}/u.test(name)) throw new UsageError("--name: at most 200 characters, no control characters");
  const expiresIn = values["expires-in"] === undefined ? undefined : parseDuration("--expires-in", values["expires-in"]);
  if (expiresIn === 0) throw new UsageError("--expires-in: must be longer than 0s");
  const allowedProviders = values.providers === undefined ? null : parseProviders(values.providers);
  const requestsPerMinute = parseLimit("--rpm", values.rpm);
  const tokensPerMinute = parseLimit("--tpm", values.tpm);
  const now = new Date();
  const expiresAt = expiresIn === undefined ? null : new Date(now.getTime() + expiresIn);
  const material = newApiKey();
  const key = await withStore(values.config, env, (store) =>
    store.createKey({ id: material.id, digest: material.digest, name, allowedProviders, requestsPerMinute, tokensPerMinute, admin: values.admin ?? false, createdAt: now, expiresAt }),
  );
  process.stdout.write(`${material.key.reveal()}\n`);
  const expires = key.expiresAt ? `expires ${isoTime(key.expiresAt)}` : "never expires";
  process.stderr.write(`created key ${key.id} (${JSON.stringify(key.name)}, ${expires}); it is shown only this once\n`);
  return 0;
}

async function list(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parse(argv, { json: { type: "boolean" } });
  const keys = await withStore(values.config, env, (store) => store.listKeys());
  const now = new Date();
  if (values.json) {
    process.stdout.write(`${JSON.stringify(keys.map((key) => ({ ...key, status: keyStatus(key, now) })), null, 2)}\n`);
    return 0;
  }
  const rows = keys.map((key) => [
    key.id,
    cell(key.name),
    keyStatus(key, now),
    key.allowedProviders?.join(",") ?? "all",
    key.requestsPerMinute?.toString() ?? "-",
    key.tokensPerMinute?.toString() ?? "-",
    key.admin ? "yes" : "no",
    isoTime(key.createdAt),
    key.expiresAt ? isoTime(key.expiresAt) : "never",
    key.lastUsedAt ? isoTime(key.lastUsedAt) : "never",
  ]);
  process.stdout.write(table(["ID", "NAME", "STATUS", "PROVIDERS", "RPM", "TPM", "ADMIN", "CREATED", "EXPIRES", "LAST USED"], rows));
  if (keys.length === 0) process.stderr.write("no keys yet: passthrough keys create --name NAME\n");
  return 0;
}

async function revoke(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values, id } = parseWithId("revoke", argv, {});
  await withStore(values.config, env, async (store) => {
    const key = await existingKey(store, id);
    if (key.revokedAt !== null) {
      process.stderr.write(`key ${id} was already revoked at ${isoTime(key.revokedAt)}\n`);
      return;
    }
    await store.revokeKey(id);
    process.stderr.write(`revoked key ${id} (${JSON.stringify(key.name)})\n`);
  });
  return 0;
}

async function rotate(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values, id } = parseWithId("rotate", argv, { grace: { type: "string" } });
  const grace = parseDuration("--grace", values.grace ?? "24h");
  const material = newApiKey(id);
  const rotated = await withStore(values.config, env, async (store) => {
    const key = await existingKey(store, id);
    if (key.revokedAt !== null) throw new ConnectError(`key ${id} is revoked: create a new one`, Code.FailedPrecondition);
    const at = new Date();
    const replaced = key.previousValidUntil !== null && key.previousValidUntil > at;
    const result = await store.rotateKey(id, { digest: material.digest, previousValidUntil: new Date(at.getTime() + grace), at });
    if (result === undefined) throw new ConnectError(`key ${id} is revoked: create a new one`, Code.FailedPrecondition);
    return { result, replaced };
  });
  process.stdout.write(`${material.key.reveal()}\n`);
  const until = rotated.result.previousValidUntil as Date;
  process.stderr.write(
    `rotated key ${id}; the previous secret works until ${isoTime(until)}` +
      (rotated.replaced ? "; the secret before it, still in its grace from the last rotation, no longer works" : "") +
      "\n",
  );
  return 0;
}

type Options = NonNullable<Parameters<typeof parseArgs>[0]>["options"];

function parse<T extends Options>(argv: string[], options: T) {
  return parseArgs({ args: argv, options: { ...options, config: { type: "string" } }, strict: true, allowPositionals: false });
}

function parseWithId<T extends Options>(command: string, argv: string[], options: T) {
  const { values, positionals } = parseArgs({ args: argv, options: { ...options, config: { type: "string" } }, strict: true, allowPositionals: true });
  if (positionals.length !== 1) throw new UsageError(`keys ${command} takes one key ID (see keys list)`);
  const [id] = positionals;
  // A whole key pasted here must not be echoed, nor kept in a message.
  if (parseApiKey(id).ok || id.startsWith("ptk_")) throw new UsageError(`keys ${command}: give the key's ID (see keys list), not the key itself`);
  if (!API_KEY_ID_PATTERN.test(id)) throw new UsageError(`keys ${command}: not a key ID (16 characters, a-z and 2-7, as keys list shows)`);
  return { values, id };
}

async function existingKey(store: Store, id: string) {
  const key = await store.getKey(id);
  if (key === undefined) throw new ConnectError(`no key with ID ${id}`, Code.NotFound);
  return key;
}

const DURATION = /^(\d{1,9})(s|m|h|d)$/;
const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `90s`, `15m`, `24h`, `30d` as milliseconds, up to 100 years. */
export function parseDuration(option: string, text: string): number {
  const match = DURATION.exec(text);
  const ms = match ? Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS] : NaN;
  if (!(ms <= 100 * 365 * UNIT_MS.d)) throw new UsageError(`${option}: "${text}" is not a duration such as 90s, 15m, 24h or 30d`);
  return ms;
}

function parseLimit(option: string, text: string | undefined): number | null {
  if (text === undefined) return null;
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < 1 || value > 2 ** 31 - 1) {
    throw new UsageError(`${option}: "${text}" is not a positive whole number`);
  }
  return value;
}

/** Provider names normalized as requests' are (lower case, `-` and spaces become `_`). */
function parseProviders(text: string): string[] {
  const names = [...new Set(text.split(",").map((name) => name.trim().toLowerCase().replace(/[- ]/g, "_")))];
  if (names.length === 0 || names.some((name) => !/^[a-z0-9_]+$/.test(name))) {
    throw new UsageError(`--providers: "${text}" is not a comma-separated list of provider names`);
  }
  return names;
}

function keyStatus(key: ApiKeySummary, now: Date): "active" | "expired" | "revoked" {
  if (key.revokedAt !== null) return "revoked";
  if (key.expiresAt !== null && key.expiresAt <= now) return "expired";
  return "active";
}
