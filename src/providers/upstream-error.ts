import { Code, ConnectError } from "@connectrpc/connect";
import { HttpStatusHint } from "../transcoding/http-status.js";
import { AnswerError, formatBytes } from "./answer-body.js";
import type { Provider } from "./provider.js";
import { SseEventTooLargeError } from "./sse-parser.js";

/**
 * Why a provider call failed, kept as the ConnectError's `cause`. `httpStatus` is what a REST
 * caller sees (the transcoder's convention); `upstreamStatus` and `upstreamBody` are what the
 * provider sent, already scrubbed of the gateway's own secrets. A `Retry-After` travels in the
 * ConnectError's metadata, which every protocol relays.
 */
export class UpstreamError extends HttpStatusHint {
  override name = "UpstreamError";

  constructor(
    message: string,
    readonly errorClass: string,
    httpStatus: number,
    readonly upstreamStatus?: number,
    readonly upstreamBody?: unknown,
  ) {
    super(message, httpStatus);
  }
}

/** The ConnectError for a provider's non-2xx answer (SPEC section 8), one place for all statuses. */
export function errorFromUpstreamStatus(provider: Provider, status: number, bodyText: string, retryAfter?: string): ConnectError {
  const body = parseErrorBody(scrub(bodyText, provider));
  if (status === 401 || status === 403) {
    // The provider refused the gateway's key: the caller can't fix that, and the body may quote the key.
    return upstreamError(`provider "${provider.name}" rejected the gateway's credentials (HTTP ${status})`, Code.Internal, "UpstreamAuthenticationError", 502, status);
  }
  if (status === 429) {
    const error = upstreamError(`provider "${provider.name}" is rate limiting (HTTP 429)`, Code.ResourceExhausted, "UpstreamRateLimited", 429, status, body);
    if (retryAfter) error.metadata.set("retry-after", retryAfter);
    return error;
  }
  if (status >= 400 && status < 500) {
    return upstreamError(`provider "${provider.name}" answered HTTP ${status}${describe(body)}`, codeFromClientStatus(status), "UpstreamClientError", status, status, body);
  }
  return upstreamError(`provider "${provider.name}" failed (HTTP ${status})${describe(body)}`, Code.Unavailable, "UpstreamUnavailable", 502, status, body);
}

/** A provider that could not be reached, or whose connection broke before it answered. */
export function errorFromConnectionFailure(provider: Provider, error: unknown): ConnectError {
  const reason = (error as { code?: string }).code ?? "connection failed";
  return upstreamError(`provider "${provider.name}" could not be reached (${reason})`, Code.Unavailable, "UpstreamConnectionError", 502);
}

/** A 2xx answer that is not what a chat-completion provider sends, or that broke one of the gateway's bounds. */
export function errorFromBadAnswer(provider: Provider, what: string, errorClass = "UpstreamBadResponse"): ConnectError {
  return upstreamError(`provider "${provider.name}" answered with ${what}`, Code.Unavailable, errorClass, 502);
}

/** A 3xx answer: never followed, since where a call goes comes only from configuration (no SSRF). */
export function errorFromRedirect(provider: Provider, status: number): ConnectError {
  return errorFromBadAnswer(provider, `a redirect (HTTP ${status}) the gateway does not follow`, "UpstreamRedirect");
}

export function errorFromTimeout(provider: Provider): ConnectError {
  return upstreamError(`provider "${provider.name}" did not answer within ${provider.timeoutMs} ms`, Code.DeadlineExceeded, "UpstreamTimeout", 504);
}

/**
 * Reading the answer failed after it had started: it broke off, or broke one of the gateway's
 * bounds (answer-body.ts, the SSE event bound). Nothing can be retried or re-sent.
 */
export function errorFromFailedRead(provider: Provider, error: unknown): ConnectError {
  if (error instanceof ConnectError) return error;
  if (error instanceof AnswerError) return errorFromBadAnswer(provider, error.message, error.errorClass);
  if (error instanceof SseEventTooLargeError) {
    const what = `an SSE event larger than the ${formatBytes(error.limitBytes)} allowed (upstream.maxEventBytes)`;
    return errorFromBadAnswer(provider, what, "UpstreamEventTooLarge");
  }
  const reason = (error as { code?: string }).code ?? "connection lost";
  return upstreamError(`provider "${provider.name}" stream broke off (${reason})`, Code.Unavailable, "UpstreamStreamError", 502);
}

function upstreamError(
  message: string,
  code: Code,
  errorClass: string,
  httpStatus: number,
  upstreamStatus?: number,
  upstreamBody?: unknown,
): ConnectError {
  const cause = new UpstreamError(message, errorClass, httpStatus, upstreamStatus, upstreamBody);
  return new ConnectError(message, code, undefined, undefined, cause);
}

/** HTTP client-error statuses to the gRPC codes that mean the same. */
function codeFromClientStatus(status: number): Code {
  switch (status) {
    case 400:
    case 422:
      return Code.InvalidArgument;
    case 404:
      return Code.NotFound;
    case 408:
      return Code.DeadlineExceeded;
    case 409:
      return Code.Aborted;
    case 412:
      return Code.FailedPrecondition;
    case 413:
      return Code.ResourceExhausted;
    default:
      return Code.FailedPrecondition;
  }
}

function parseErrorBody(text: string): unknown {
  if (text === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text.length > 2048 ? `${text.slice(0, 2048)}…` : text;
  }
}

/** `: <the provider's own error message>` when it has the usual `{"error": {"message"}}` shape. */
function describe(body: unknown): string {
  const message = (body as { error?: { message?: unknown } } | undefined)?.error?.message;
  return typeof message === "string" ? `: ${message.slice(0, 500)}` : "";
}

/** Removes the gateway's own secrets from text a provider sent, in case it echoes them. */
function scrub(text: string, provider: Provider): string {
  let out = text;
  for (const secret of provider.credential.secrets) {
    if (secret && out.includes(secret)) out = out.split(secret).join("[redacted]");
  }
  return out;
}
