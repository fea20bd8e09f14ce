import { Code, ConnectError } from "@connectrpc/connect";
import { setTimeout as sleep } from "node:timers/promises";
import { Pool, type Dispatcher } from "undici";
import type { Provider } from "./provider.js";
import {
  errorFromConnectionFailure,
  errorFromTimeout,
  errorFromUpstreamStatus,
} from "./upstream-error.js";

export interface UpstreamOptions {
  /** Keep-alive connections per provider origin. */
  connectionsPerProvider: number;
  /** Longest `Retry-After` waited for; a longer one is relayed. */
  retryAfterCapMs: number;
  /** First backoff step; doubles each retry, with full jitter. */
  backoffBaseMs: number;
}

/** A provider's 2xx answer, its body not yet read. */
export interface UpstreamResponse {
  status: number;
  headers: Dispatcher.ResponseData["headers"];
  body: Dispatcher.ResponseData["body"];
}

/** One call's budget: aborted by the caller (hang-up, deadline) or by the provider's timeout. */
export interface CallBudget {
  readonly signal: AbortSignal;
  readonly deadline: number;
  /** The error to report once `signal` has aborted. */
  abortError(): ConnectError;
  /** Clears the timer; call when the call is over. */
  dispose(): void;
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
   * outcome rejects with a ConnectError (see upstream-error.ts).
   */
  send(provider: Provider, body: string | Uint8Array, budget: CallBudget): Promise<UpstreamResponse>;
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

  async function send(provider: Provider, body: string | Uint8Array, budget: CallBudget): Promise<UpstreamResponse> {
    const authorization = provider.credential.authorize();
    const headers = {
      ...provider.headers,
      ...(authorization instanceof Promise ? await authorization : authorization),
      "content-type": "application/json",
      accept: "application/json, text/event-stream",
    };
    const target = pool(provider.origin);
    for (let attempt = 0; ; attempt++) {
      const canRetry = attempt < provider.retries;
      let response: Dispatcher.ResponseData;
      try {
        response = await target.request({ method: "POST", path: provider.completionsPath, headers, body, signal: budget.signal });
      } catch (error) {
        if (budget.signal.aborted) throw budget.abortError();
        if (canRetry && (await backoff(retryDelay(attempt), budget))) continue;
        if (budget.signal.aborted) throw budget.abortError();
        throw errorFromConnectionFailure(provider, error);
      }
      const { statusCode, headers: responseHeaders } = response;
      if (statusCode >= 200 && statusCode < 300) {
        return { status: statusCode, headers: responseHeaders, body: response.body };
      }
      const retryAfter = headerValue(responseHeaders["retry-after"]);
      if (canRetry && RETRYABLE_STATUS.has(statusCode)) {
        const delay = retryAfter === undefined ? retryDelay(attempt) : parseRetryAfter(retryAfter);
        if (delay !== undefined && delay <= options.retryAfterCapMs) {
          await response.body.dump().catch(() => undefined);
          if (await backoff(delay, budget)) continue;
          if (budget.signal.aborted) throw budget.abortError();
          // Not enough time left to wait: fall through and relay this answer.
          throw errorFromUpstreamStatus(provider, statusCode, "", retryAfter);
        }
      }
      const text = await readText(response.body, budget);
      throw errorFromUpstreamStatus(provider, statusCode, text, retryAfter);
    }
  }

  /** Exponential backoff with full jitter. */
  function retryDelay(attempt: number): number {
    return Math.random() * options.backoffBaseMs * 2 ** attempt;
  }

  return {
    budget: createBudget,
    send,
    async close() {
      await Promise.all([...pools.values()].map((p) => p.close()));
      pools.clear();
    },
  };
}

/** Waits `ms` if the budget allows; false when it does not (or the call was aborted). */
async function backoff(ms: number, budget: CallBudget): Promise<boolean> {
  if (Date.now() + ms >= budget.deadline) return false;
  try {
    await sleep(ms, undefined, { signal: budget.signal });
    return true;
  } catch {
    return false;
  }
}

function createBudget(provider: Provider, callerSignal: AbortSignal, callerTimeoutMs?: number): CallBudget {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, provider.timeoutMs);
  const onCallerAbort = () => controller.abort();
  if (callerSignal.aborted) controller.abort();
  else callerSignal.addEventListener("abort", onCallerAbort, { once: true });
  return {
    signal: controller.signal,
    deadline: Date.now() + Math.min(provider.timeoutMs, callerTimeoutMs ?? Infinity),
    abortError() {
      if (timedOut) return errorFromTimeout(provider);
      const reason: unknown = callerSignal.reason;
      // connect-node aborts the handler's signal with a ConnectError: DEADLINE_EXCEEDED for the caller's deadline.
      return reason instanceof ConnectError ? reason : new ConnectError("the caller cancelled the call", Code.Canceled);
    },
    dispose() {
      clearTimeout(timer);
      callerSignal.removeEventListener("abort", onCallerAbort);
    },
  };
}

/** `Retry-After` as milliseconds: delta-seconds or an HTTP date; undefined when unreadable. */
export function parseRetryAfter(value: string): number | undefined {
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

async function readText(body: Dispatcher.ResponseData["body"], budget: CallBudget): Promise<string> {
  try {
    return await body.text();
  } catch {
    if (budget.signal.aborted) throw budget.abortError();
    return "";
  }
}
