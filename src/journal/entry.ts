import { Code } from "@connectrpc/connect";
import { ANONYMOUS_PRINCIPAL, type CallRecord } from "../call/record.js";
import type { JournalEntry } from "../store/store.js";


/** What an ended record always has; this stands in for a record read before its end. */
const unfinished = { code: Code.Unknown, status: 500, message: "the call had not ended when it was journaled" };

// A BOM is part of what was received, so it is kept.
const utf8 = new TextDecoder("utf-8", { ignoreBOM: true });

/**
 * A call's record as the journal keeps it (SPEC section 7). Only what the record holds is
 * read, never its headers: the request as received (REST bytes, also when they were not valid
 * JSON) or as decoded (RPC), and the provider's own answer text, or a stream's assembled result.
 */
export function journalEntryOf(call: CallRecord): JournalEntry {
  const outcome = call.outcome ?? unfinished;
  const usage = call.usage;
  return {
    key: call.journalKey,
    time: new Date(call.startedAt),
    principal: call.principal?.id ?? ANONYMOUS_PRINCIPAL,
    provider: call.providerName ?? null,
    protocol: call.protocol,
    requestBody: requestBodyOf(call),
    responseBody: responseBodyOf(call),
    status: outcome.status,
    grpcCode: outcome.code,
    upstreamStatus: call.upstreamStatus ?? null,
    durationMs: call.durationMs ?? 0,
    promptTokens: tokenCount(usage?.promptTokens),
    completionTokens: tokenCount(usage?.completionTokens),
    totalTokens: tokenCount(usage?.totalTokens),
    error: outcome.code === 0 ? null : (outcome.message ?? null),
  };
}

function requestBodyOf({ request }: CallRecord): string | null {
  if (request?.bytes !== undefined) return utf8.decode(request.bytes);
  if (request?.body !== undefined) return JSON.stringify(request.body);
  return null;
}

/** The record keeps no error body of its own, so a failure without an answer has none. */
function responseBodyOf(call: CallRecord): string | null {
  if (call.answer === undefined) return null;
  if (call.answer.kind === "unary") return call.answer.text;
  return JSON.stringify(call.answerBody);
}

/**
 * A provider's token count as the journal's integer column takes it; anything else (a fraction,
 * a negative or huge number) is null, since one value the database refuses would fail its whole batch.
 */
function tokenCount(count: number | undefined): number | null {
  return count !== undefined && Number.isInteger(count) && count >= 0 && count <= MAX_INT32 ? count : null;
}

const MAX_INT32 = 2 ** 31 - 1;
