import type { IncomingHttpHeaders } from "node:http";
import { Pool, type Dispatcher } from "undici";
import { AnswerError, decodeAnswer, encodingRefusal, readAnswer, readErrorBody, release } from "./answer-body.js";
import { bufferedRequest, type BufferedAnswer } from "./buffered-request.js";
import { CallBudget } from "./call-budget.js";
import type { Provider } from "./provider.js";
import { errorFromConnectionFailure, errorFromFailedRead, errorFromRedirect, errorFromUpstreamStatus } from "./upstream-error.js";

export { CallBudget };

export interface UpstreamOptions {
  /** Keep-alive connections per provider origin. */
  connectionsPerProvider: number;
  /** Longest `Retry-After` waited for; a longer one is relayed. */
  retryAfterCapMs: number;
  /** First backoff step; doubles each retry, with full jitter. */
  backoffBaseMs: number;
  /** Largest whole answer read (unary, or a stream request answered with JSON). */
  maxAnswerBytes: number;
  /** Largest SSE event read. */
  maxEventBytes: number;
}

/** A provider's 2xx answer: a stream still to read, or (`buffered`) read whole. */
export interface UpstreamResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /**
   * The whole answer as text, within `upstream.maxAnswerBytes` and valid UTF-8; else it
   * rejects with an AnswerError (see answer-body.ts), having read nothing more.
   */
  text(): Promise<string>;
}

/** A 2xx answer whose body is still arriving: a stream to relay, each event within `maxEventBytes`. */
export interface StreamedResponse extends UpstreamResponse {
  body: Dispatcher.ResponseData["body"];
  maxEventBytes: number;
}

export interface UpstreamClient {
  /**
   * A budget for one call to this provider: the smaller of its timeout and the caller's
   * deadline (`callerTimeoutMs`; the caller's signal aborts when it passes).
   */
  budget(provider: Provider, callerSignal: AbortSignal, callerTimeoutMs?: number): CallBudget;
  /**
   * POSTs the body to the provider's chat-completions endpoint and resolves with its 2xx
   * answer, retrying connection failures, 429 and 502/503/504 within the budget; every other
   * outcome rejects with a ConnectError (see upstream-error.ts). `buffered` reads the answer
   * whole (unary calls); otherwise its body is a stream to relay as it arrives. A redirect is
   * never followed (no SSRF), and a 2xx body in a content coding is refused unread.
   * `callHeaders` (the call's trace context) are sent too; the provider's own headers win.
   */
  send(provider: Provider, body: string | Uint8Array, budget: CallBudget, mode: "buffered", callHeaders?: Record<string, string>): Promise<UpstreamResponse>;
  send(provider: Provider, body: string | Uint8Array, budget: CallBudget, mode: "stream", callHeaders?: Record<string, string>): Promise<StreamedResponse>;
  close(): Promise<void>;
}

const RETRYABLE_STATUS = new Set([429, 502, 503, 504]);

export function createUpstreamClient(options: UpstreamOptions): UpstreamClient {
  const pools = new Map<string, Pool>();

  function pool(origin: string): Pool {
    let found = pools.get(origin);
    if (!found) {
      found = new Pool(origin, { connections: options.connectionsPerProvider, pipelining: 1, keepAliveTimeout: 30_000 });
      pools.set(origin, found);
    }
    return found;
  }

  /** Per provider: the headers of every call, built once unless the credential is asynchronous. */
  const staticHeaders = new WeakMap<Provider, Record<string, string>>();
  async function headersFor(provider: Provider): Promise<Record<string, string>> {
    const authorization = provider.credential.authorize();
    const headers = {
      ...provider.headers,
      ...(authorization instanceof Promise ? await authorization : authorization),
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
      // Without it any coding is acceptable (RFC 9110); the gateway inflates none (answer-body.ts).
      "accept-encoding": "identity",
    };
    if (!(authorization instanceof Promise)) staticHeaders.set(provider, headers);
    return headers;
  }

  async function send(provider: Provider, body: string | Uint8Array, budget: CallBudget, mode: "buffered" | "stream", callHeaders?: Record<string, string>): Promise<UpstreamResponse> {
    const own = staticHeaders.get(provider) ?? (await headersFor(provider));
    const headers = callHeaders === undefined ? own : { ...callHeaders, ...own };
    const target = pool(provider.origin);
    for (let attempt = 0; ; attempt++) {
      const canRetry = attempt < provider.retries;
      let response: BufferedAnswer | Dispatcher.ResponseData;
      try {
        const request = { method: "POST" as const, path: provider.completionsPath, headers, body };
        response =
          mode === "buffered"
            ? await bufferedRequest(target, request, budget, options.maxAnswerBytes)
            : await target.request({ ...request, signal: budget });
      } catch (error) {
        if (budget.aborted) throw budget.abortError();
        if (error instanceof AnswerError) throw errorFromFailedRead(provider, error);
        if (canRetry && (await backoff(retryDelay(attempt), budget))) continue;
        if (budget.aborted) throw budget.abortError();
        throw errorFromConnectionFailure(provider, error);
      }
      const { statusCode, headers: responseHeaders } = response;
      if (statusCode >= 200 && statusCode < 300) {
        if ("bytes" in response) return new BufferedResponse(statusCode, responseHeaders, response.bytes);
        return streamedResponse(provider, response, options);
      }
      if (statusCode >= 300 && statusCode < 400) {
        if ("body" in response) release(response.body);
        throw errorFromRedirect(provider, statusCode);
      }
      const retryAfter = headerValue(responseHeaders["retry-after"]);
      // Read (up to ERROR_BODY_BYTES) so that the last answer is relayed with its body.
      const text = "bytes" in response ? response.bytes.toString("utf8") : await readText(response, budget);
      if (canRetry && RETRYABLE_STATUS.has(statusCode)) {
        const delay = retryAfter === undefined ? retryDelay(attempt) : parseRetryAfter(retryAfter);
        if (delay !== undefined && delay <= options.retryAfterCapMs) {
          if (await backoff(delay, budget)) continue;
          if (budget.aborted) throw budget.abortError();
          // Not enough time left to wait: relay this answer.
        }
      }
      throw errorFromUpstreamStatus(provider, statusCode, text, retryAfter);
    }
  }

  /** Exponential backoff with full jitter. */
  function retryDelay(attempt: number): number {
    return Math.random() * options.backoffBaseMs * 2 ** attempt;
  }

  return {
    budget: (provider, callerSignal, callerTimeoutMs) => new CallBudget(provider, callerSignal, callerTimeoutMs),
    send: send as UpstreamClient["send"],
    async close() {
      await Promise.all([...pools.values()].map((p) => p.close()));
      pools.clear();
    },
  };
}

/** Waits `ms` if the budget allows; false when it does not, or when the call was aborted meanwhile. */
function backoff(ms: number, budget: CallBudget): Promise<boolean> {
  if (Date.now() + ms >= budget.deadline || budget.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      budget.off("abort", onAbort);
      resolve(true);
    }, ms);
    budget.once("abort", onAbort);
  });
}

/** `Retry-After` as milliseconds: delta-seconds or an HTTP date; undefined when unreadable. */
function parseRetryAfter(value: string): number | undefined {
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

async function readText(response: Dispatcher.ResponseData, budget: CallBudget): Promise<string> {
  try {
    return await readErrorBody(response.body, response.headers);
  } catch {
    if (budget.aborted) throw budget.abortError();
    return "";
  }
}

/** A 2xx answer read whole: its text is decoded only when asked for. */
class BufferedResponse implements UpstreamResponse {
  constructor(
    readonly status: number,
    readonly headers: IncomingHttpHeaders,
    private readonly bytes: Buffer,
  ) {}

  async text(): Promise<string> {
    return decodeAnswer(this.bytes);
  }
}

/** A 2xx answer still arriving; refused unread when in a content coding. */
function streamedResponse(provider: Provider, response: Dispatcher.ResponseData, options: UpstreamOptions): StreamedResponse {
  const { statusCode, headers, body } = response;
  const refusal = encodingRefusal(headers);
  if (refusal !== undefined) {
    release(body);
    throw errorFromFailedRead(provider, refusal);
  }
  return { status: statusCode, headers, body, maxEventBytes: options.maxEventBytes, text: () => readAnswer(body, headers, options.maxAnswerBytes) };
}
