import type { JournalEntry } from "./store.js";

/** The journal table's columns, in the order `journalValues` gives them; the same in every dialect. */
export const JOURNAL_COLUMNS = [
  "key",
  "time",
  "principal",
  "provider",
  "protocol",
  "request_body",
  "response_body",
  "status",
  "grpc_code",
  "upstream_status",
  "duration_ms",
  "prompt_tokens",
  "completion_tokens",
  "total_tokens",
  "error",
] as const;

/** A journal row as a driver returns it: the time as epoch milliseconds (SQLite) or a Date (PostgreSQL). */
export interface JournalRow {
  key: string;
  time: number | Date;
  principal: string;
  provider: string | null;
  protocol: string;
  request_body: string | null;
  response_body: string | null;
  status: number;
  grpc_code: number;
  upstream_status: number | null;
  duration_ms: number;
  prompt_tokens: number | null;
  completion_tokens: number | null;
  total_tokens: number | null;
  error: string | null;
}

/**
 * An entry's values in JOURNAL_COLUMNS order; an absent optional field becomes NULL. A NUL
 * character (only a body that was not valid JSON can hold one) becomes U+FFFD, since PostgreSQL's
 * text cannot store it and one such entry would fail its whole batch.
 */
export function journalValues<Time>(entry: JournalEntry, time: (date: Date) => Time): Array<string | number | Time | null> {
  return [
    entry.key,
    time(entry.time),
    entry.principal,
    entry.provider ?? null,
    entry.protocol,
    text(entry.requestBody),
    text(entry.responseBody),
    entry.status,
    entry.grpcCode,
    entry.upstreamStatus ?? null,
    entry.durationMs,
    entry.promptTokens ?? null,
    entry.completionTokens ?? null,
    entry.totalTokens ?? null,
    text(entry.error),
  ];
}

const text = (value: string | null | undefined) => (value == null ? null : value.includes("\0") ? value.replaceAll("\0", "\uFFFD") : value);

export function fromJournalRow(row: JournalRow): JournalEntry {
  return {
    key: row.key,
    time: new Date(row.time),
    principal: row.principal,
    provider: row.provider,
    protocol: row.protocol,
    requestBody: row.request_body,
    responseBody: row.response_body,
    status: row.status,
    grpcCode: row.grpc_code,
    upstreamStatus: row.upstream_status,
    durationMs: row.duration_ms,
    promptTokens: row.prompt_tokens,
    completionTokens: row.completion_tokens,
    totalTokens: row.total_tokens,
    error: row.error,
  };
}
