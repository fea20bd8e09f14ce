import { create, type JsonObject } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { codeToString } from "../connect-internals.js";
import { JournalEntrySchema, TokenUsageSchema, type JournalEntry } from "../gen/smarter/prompt/v1/journal_pb.js";
import type { JournalEntry as StoredEntry } from "../store/store.js";

/**
 * The store's entry as the JournalEntry message: a body that is a JSON object becomes a Struct,
 * any other text (invalid JSON as received, a JSON array) stays text; absent facts stay unset.
 */
export function journalEntryMessage(entry: StoredEntry): JournalEntry {
  const request = jsonObjectOf(entry.requestBody);
  const response = jsonObjectOf(entry.responseBody);
  const counted = entry.promptTokens !== null || entry.completionTokens !== null || entry.totalTokens !== null;
  return create(JournalEntrySchema, {
    key: entry.key,
    time: timestampFromDate(entry.time),
    principal: entry.principal,
    providerName: entry.provider ?? "",
    protocol: entry.protocol,
    request:
      request !== undefined
        ? { case: "requestBody", value: request }
        : entry.requestBody !== null
          ? { case: "requestText", value: entry.requestBody }
          : { case: undefined },
    response:
      response !== undefined
        ? { case: "responseBody", value: response }
        : entry.responseBody !== null
          ? { case: "responseText", value: entry.responseBody }
          : { case: undefined },
    httpStatus: entry.status,
    grpcCode: entry.grpcCode,
    grpcCodeName: entry.grpcCode === 0 ? "ok" : codeToString(entry.grpcCode),
    upstreamStatus: entry.upstreamStatus ?? undefined,
    durationMs: entry.durationMs,
    usage: counted
      ? create(TokenUsageSchema, {
          promptTokens: entry.promptTokens ?? undefined,
          completionTokens: entry.completionTokens ?? undefined,
          totalTokens: entry.totalTokens ?? undefined,
        })
      : undefined,
    error: entry.error ?? "",
  });
}

/** The text as a JSON object, or undefined when it is not one. */
function jsonObjectOf(text: string | null): JsonObject | undefined {
  if (text === null) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as JsonObject) : undefined;
  } catch {
    return undefined;
  }
}
