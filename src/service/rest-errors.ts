import { ConnectError } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import { UpstreamError } from "../providers/upstream-error.js";
import { httpStatusOf } from "../transcoding/http-status.js";
import { API_VERSION, JOURNAL_KEY_HEADER, newJournalKey } from "./journal-key.js";

/**
 * Smarter's REST error envelope, without a stack trace (SPEC section 8):
 * `{"error": {errorClass, description, status, code, upstream?}, "api", "metadata": {"key"}}`.
 */
export function errorEnvelope(error: ConnectError, journalKey: string): object {
  const cause = error.cause instanceof UpstreamError ? error.cause : undefined;
  return {
    error: {
      errorClass: cause?.errorClass ?? errorClassOf(error),
      description: error.rawMessage,
      status: httpStatusOf(error),
      code: codeToString(error.code),
      ...(cause?.upstreamBody === undefined ? {} : { upstream: cause.upstreamBody }),
    },
    api: API_VERSION,
    metadata: { key: journalKey },
  };
}

/**
 * The transcoder's error writer for this service. Errors raised before the handler ran
 * (a body that is not JSON, a route that does not exist) get a journal key here.
 */
export function writeRestError(error: ConnectError, call: { responseHeader: Headers }) {
  let journalKey = call.responseHeader.get(JOURNAL_KEY_HEADER);
  if (!journalKey) {
    journalKey = newJournalKey();
    call.responseHeader.set(JOURNAL_KEY_HEADER, journalKey);
  }
  // The transcoder adds the error's metadata (a relayed Retry-After) as headers.
  return { status: httpStatusOf(error), headers: { "content-type": "application/json" }, body: JSON.stringify(errorEnvelope(error, journalKey)) };
}

/** An SSE event that ends a REST stream which broke after it had started. */
export function sseErrorEvent(error: ConnectError, journalKey: string): string {
  return `event: error\ndata: ${JSON.stringify(errorEnvelope(error, journalKey))}\n\n`;
}

const CLASS_BY_CODE: Record<string, string> = {
  not_found: "NotFound",
  invalid_argument: "InvalidArgument",
  resource_exhausted: "ResourceExhausted",
  unauthenticated: "Unauthenticated",
  permission_denied: "PermissionDenied",
  canceled: "Cancelled",
  deadline_exceeded: "DeadlineExceeded",
  unimplemented: "Unimplemented",
};

function errorClassOf(error: ConnectError): string {
  return CLASS_BY_CODE[codeToString(error.code)] ?? "InternalError";
}
