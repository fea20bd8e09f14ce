import { parseArgs } from "node:util";
import { toJson } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { parseApiKey } from "../auth/api-keys.js";
import { codeToString } from "../connect-internals.js";
import { JournalEntrySchema } from "../gen/smarter/prompt/v1/journal_pb.js";
import { normalizeProviderName } from "../providers/provider.js";
import { journalEntryMessage } from "../service/journal-entry.js";
import { MAX_JOURNAL_PAGE_SIZE, type JournalEntry } from "../store/store.js";
import { cell, runSubcommand, table, UsageError, withStore, type Subcommand } from "./command.js";

export const JOURNAL_USAGE = `Usage: passthrough journal <command> [options]

Commands:
  show KEY                  one entry, as JSON (the JournalEntry of GET /api/v1/prompts/journal/KEY)
  list [--limit N] [--provider P] [--principal ID] [--json]
                            the latest entries of every principal, newest first (default 20);
                            --json prints one JSON entry a line

Every command takes --config FILE and opens the store of database.url (DATABASE_URL).`;

const DEFAULT_LIMIT = 20;
const JOURNAL_KEY = /^[0-9a-f]{64}$/;

const COMMANDS: Record<string, Subcommand> = { show, list };

/**
 * `passthrough journal …`, for an operator with access to the store: every principal's entries.
 * Exit code 2 for a usage or configuration error, 1 when the store fails or the entry does not exist.
 */
export function journalCommand(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return runSubcommand("journal", JOURNAL_USAGE, COMMANDS, argv, env);
}

async function show(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: { config: { type: "string" } }, strict: true, allowPositionals: true });
  if (positionals.length !== 1) throw new UsageError("journal show takes one journal key (the x-journal-key of a call)");
  const [key] = positionals;
  if (!JOURNAL_KEY.test(key)) throw new UsageError("journal show: a journal key is 64 lowercase hex characters");
  const entry = await withStore(values.config, env, (store) => store.getJournalEntry(key));
  if (entry === undefined) throw new ConnectError(`no journal entry ${key}`, Code.NotFound);
  process.stdout.write(`${JSON.stringify(entryJson(entry), null, 2)}\n`);
  return 0;
}

async function list(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { config: { type: "string" }, limit: { type: "string" }, provider: { type: "string" }, principal: { type: "string" }, json: { type: "boolean" } },
    strict: true,
  });
  const limit = parseLimit(values.limit);
  const provider = values.provider === undefined ? undefined : normalizeProviderName(values.provider);
  if (provider === "") throw new UsageError("--provider: give a provider name");
  const principal = parsePrincipal(values.principal);
  const entries = await withStore(values.config, env, async (store) => {
    const found: JournalEntry[] = [];
    let pageToken: string | undefined;
    do {
      const page = await store.listJournal({ principal, provider, pageToken, pageSize: Math.min(limit - found.length, MAX_JOURNAL_PAGE_SIZE) });
      found.push(...page.entries);
      pageToken = page.nextPageToken;
    } while (pageToken !== undefined && found.length < limit);
    return found;
  });
  if (values.json) {
    process.stdout.write(entries.map((entry) => `${JSON.stringify(entryJson(entry))}\n`).join(""));
    return 0;
  }
  const rows = entries.map((entry) => [
    entry.time.toISOString(),
    entry.key,
    cell(entry.principal),
    cell(entry.provider ?? "-"),
    cell(entry.protocol),
    `${entry.status} ${entry.grpcCode === 0 ? "ok" : codeToString(entry.grpcCode)}`,
    `${Math.round(entry.durationMs)}ms`,
  ]);
  process.stdout.write(table(["TIME", "KEY", "PRINCIPAL", "PROVIDER", "PROTOCOL", "STATUS", "DURATION"], rows));
  if (entries.length === 0) process.stderr.write("no journal entries\n");
  return 0;
}

/** The entry as JSON, in the very shape the REST door writes it. */
function entryJson(entry: JournalEntry) {
  return toJson(JournalEntrySchema, journalEntryMessage(entry), { alwaysEmitImplicit: true });
}

function parseLimit(text: string | undefined): number {
  if (text === undefined) return DEFAULT_LIMIT;
  const value = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < 1) throw new UsageError(`--limit: "${text}" is not a positive whole number`);
  return value;
}

function parsePrincipal(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  // A whole key pasted here must not be echoed, nor kept in a message.
  if (parseApiKey(text).ok || text.startsWith("ptk_")) throw new UsageError("--principal: give the key's ID (see keys list), not the key itself");
  if (text === "" || text.length > 200 || /\p{Cc}/u.test(text)) throw new UsageError("--principal: a key ID, a token subject or anonymous");
  return text;
}
