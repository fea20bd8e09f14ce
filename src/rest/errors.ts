import type { ConnectError } from "@connectrpc/connect";
import { kCallRecord } from "../call/record.js";
import { codeToString } from "../connect-internals.js";
import { UpstreamError } from "../providers/upstream-error.js";
import { API_VERSION } from "../service/answer.js";
import type { WriteError } from "../transcoding/error-response.js";
import { httpStatusOf } from "../transcoding/http-status.js";

/**
 * Smarter's REST error envelope, without a stack trace (SPEC section 8):
 * `{"error": {errorClass, description, status, code, upstream?}, "api", "metadata": {"key"}}`.
 * A request that was no call (a wrong HTTP method, no route) has no journal key: `metadata` is empty.
 */
export function errorEnvelope(error: ConnectError, journalKey: string | undefined): object {
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
    metadata: journalKey === undefined ? {} : { key: journalKey },
  };
}

/** The transcoder's error writer for the gateway: the envelope, with the call's journal key. */
export const writeRestError: WriteError = (error, { contextValues }) => ({
  status: httpStatusOf(error),
  headers: { "content-type": "application/json" },
  body: JSON.stringify(errorEnvelope(error, contextValues?.get(kCallRecord)?.journalKey)),
});

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
