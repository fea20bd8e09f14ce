import { toJsonString } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { JournalEntrySchema, type JournalEntry } from "../src/gen/smarter/prompt/v1/journal_pb.js";
import { formatMs } from "./format.js";
import { codeName, type Gateway } from "./rpc.js";

/** How long a read waits for the writer, which stores an entry shortly after its call ends. */
const JOURNAL_WAIT_MS = 4000;
const RETRY_MS = 200;

/**
 * The entry of `journalKey` through JournalService.GetJournalEntry, asked again on NOT_FOUND
 * until JOURNAL_WAIT_MS have passed; `waiting` is told each time it waits.
 */
export async function readJournalEntry(gateway: Gateway, journalKey: string, waiting: () => void): Promise<JournalEntry> {
  const deadline = performance.now() + JOURNAL_WAIT_MS;
  for (;;) {
    try {
      return await gateway.journal.getJournalEntry({ journalKey });
    } catch (error) {
      if (ConnectError.from(error).code !== Code.NotFound || performance.now() > deadline) throw error;
      waiting();
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  }
}

/** An entry as the journal view shows it: a one-line summary, then the entry as proto3 JSON. */
export function describeEntry(entry: JournalEntry): string {
  const usage = entry.usage?.totalTokens === undefined ? "" : ` · ${entry.usage.totalTokens} tokens`;
  const head = `${entry.providerName || "(no provider)"} over ${entry.protocol} · HTTP ${entry.httpStatus} · ${codeName(entry.grpcCode)} · ${formatMs(entry.durationMs)}${usage}`;
  return `${head}\n\n${toJsonString(JournalEntrySchema, entry, { prettySpaces: 2 })}`;
}
