import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { ANONYMOUS_PRINCIPAL, kCallRecord } from "../call/record.js";
import { JournalService, ListJournalEntriesResponseSchema } from "../gen/smarter/prompt/v1/journal_pb.js";
import { normalizeProviderName } from "../providers/provider.js";
import { MAX_JOURNAL_PAGE_SIZE, type Store } from "../store/store.js";
import { journalEntryMessage } from "./journal-entry.js";

/** A page_size of 0 asks for this many entries (AIP-158 leaves the default to the service). */
export const DEFAULT_JOURNAL_PAGE_SIZE = 50;

const JOURNAL_KEY = /^[0-9a-f]{64}$/;

/**
 * JournalService over the store (SPEC sections 2 and 7): a caller reads only its own entries.
 * An entry of another principal is NOT_FOUND with the very description of a key that does not
 * exist, so a caller cannot tell the two apart. A key that cannot be a journal key is
 * INVALID_ARGUMENT: its shape says nothing about any entry.
 */
export function createJournalService(store: Store): ServiceImpl<typeof JournalService> {
  return {
    async getJournalEntry({ journalKey }, context) {
      const principal = callerOf(context);
      if (!JOURNAL_KEY.test(journalKey)) {
        throw new ConnectError("journal_key must be 64 lowercase hex characters", Code.InvalidArgument);
      }
      const entry = await store.getJournalEntry(journalKey);
      if (entry === undefined || entry.principal !== principal) {
        throw new ConnectError("journal entry not found", Code.NotFound);
      }
      return journalEntryMessage(entry);
    },

    async listJournalEntries({ pageSize, pageToken, providerName }, context) {
      const principal = callerOf(context);
      if (pageSize < 0) throw new ConnectError("page_size must not be negative", Code.InvalidArgument);
      const provider = normalizeProviderName(providerName);
      const page = await store.listJournal({
        principal,
        pageSize: pageSize === 0 ? DEFAULT_JOURNAL_PAGE_SIZE : Math.min(pageSize, MAX_JOURNAL_PAGE_SIZE),
        pageToken: pageToken === "" ? undefined : pageToken,
        provider: provider === "" ? undefined : provider,
      });
      return create(ListJournalEntriesResponseSchema, {
        entries: page.entries.map(journalEntryMessage),
        nextPageToken: page.nextPageToken ?? "",
      });
    },
  };
}

/**
 * The caller's principal from the call's record: authentication's, or ANONYMOUS_PRINCIPAL
 * when it is off. Fails closed when there is no record (the service was served outside the entry).
 */
function callerOf(context: HandlerContext): string {
  const call = context.values.get(kCallRecord);
  if (call === undefined) throw new ConnectError("internal error", Code.Internal);
  return call.principal?.id ?? ANONYMOUS_PRINCIPAL;
}
