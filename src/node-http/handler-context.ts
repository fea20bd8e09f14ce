import {
  Code,
  ConnectError,
  createContextValues,
  type ContextValues,
  type HandlerContext,
} from "@connectrpc/connect";
import type { DescMethod } from "@bufbuild/protobuf";
import { kCallRecord, type CallRecord } from "../call/record.js";
import { requestHeaders, requestUrl, type NodeRequest } from "./request.js";
import type { NodeResponse } from "./response.js";

export interface CallContextInit {
  /** The method called; the context's service is its parent. */
  method: DescMethod;
  protocolName: string;
  requestMethod: string;
  url: string;
  timeoutMs?: number;
  shutdownSignal?: AbortSignal;
  requestHeader: Headers;
  contextValues?: ContextValues;
}

/** The longest delay a Node.js timer holds; a longer one fires after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export interface CallContext extends HandlerContext {
  /** Aborts the signal (once) and releases the deadline timer and the shutdown listener. */
  abort(reason?: unknown): void;
}

/**
 * The HandlerContext of a call served outside connect-node (REST, the unary fast paths),
 * with the semantics of connect's createHandlerContext (the signal aborts at the deadline, on
 * shutdown and on abort()) but one AbortController instead of three: on Node.js 20 an
 * AbortController is costly next to the rest of a call (test/bench/README.md).
 */
function createCallContext(init: CallContextInit): CallContext {
  const controller = new AbortController();
  const { shutdownSignal, timeoutMs } = init;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let deadline: number | undefined;
  const calls = shutdownSignal === undefined ? undefined : callsInFlight(shutdownSignal);
  function abort(reason?: unknown) {
    if (timer !== undefined) clearTimeout(timer);
    calls?.delete(abort);
    if (!controller.signal.aborted) controller.abort(reason);
  }
  if (timeoutMs !== undefined) {
    deadline = Date.now() + timeoutMs;
    // A deadline beyond a timer's reach (~24.8 days; gRPC allows 99999999H) is as good as none.
    if (timeoutMs <= MAX_TIMER_MS) timer = setTimeout(() => abort(new ConnectError("the operation timed out", Code.DeadlineExceeded)), timeoutMs);
  }
  if (shutdownSignal?.aborted) abort(shutdownSignal.reason);
  else calls?.add(abort);
  return {
    service: init.method.parent,
    method: init.method,
    protocolName: init.protocolName,
    requestMethod: init.requestMethod,
    url: init.url,
    signal: controller.signal,
    timeoutMs: () => (deadline === undefined ? undefined : deadline - Date.now()),
    requestHeader: init.requestHeader,
    responseHeader: new Headers(),
    responseTrailer: new Headers(),
    values: init.contextValues ?? createContextValues(),
    abort,
  };
}

/** A call served from a Node.js request: its context, and how it ends. */
export interface NodeCall {
  readonly context: CallContext;
  /** True once the caller went away before the response was finished. */
  callerGone(): boolean;
  /**
   * The error to answer with, the call's signal aborted with it. As connect-node: a foreign
   * error is a bug, reported as INTERNAL without its message (kept as the cause).
   */
  fail(reason: unknown): ConnectError;
  /** As connect-node, the signal aborts when the call is over. */
  complete(): void;
}

// One shared reason: a DOMException per call would cost its stack trace.
const callComplete = new DOMException("The call is complete.", "AbortError");

/**
 * Starts a call for a Node.js request, with the call's record (its request headers, and in the
 * context values for interceptors and handlers): its signal also aborts (CANCELED) when the caller goes away.
 */
export function startNodeCall(
  req: NodeRequest,
  res: NodeResponse,
  init: Omit<CallContextInit, "url" | "requestHeader" | "contextValues"> & { record?: CallRecord },
): NodeCall {
  const contextValues = createContextValues();
  if (init.record !== undefined) contextValues.set(kCallRecord, init.record);
  const context = createCallContext({ ...init, url: requestUrl(req), requestHeader: init.record?.requestHeader ?? requestHeaders(req), contextValues });
  let gone = false;
  res.once("close", () => {
    // Not writableFinished: Node's Http2ServerResponse reports it true once the stream closed, answered or not.
    if (res.writableEnded) return;
    gone = true;
    context.abort(new ConnectError("the client closed the connection", Code.Canceled));
  });
  return {
    context,
    callerGone: () => gone,
    fail(reason) {
      const error = reason instanceof ConnectError ? reason : new ConnectError("internal error", Code.Internal, undefined, undefined, reason);
      context.abort(error);
      return error;
    },
    complete: () => context.abort(callComplete),
  };
}

const inFlight = new WeakMap<AbortSignal, Set<(reason?: unknown) => void>>();

/**
 * The calls to abort when this shutdown signal fires. One listener per signal rather than one
 * per call: adding and removing an AbortSignal listener on every call costs more, and Node.js
 * warns of a leak past ten.
 */
function callsInFlight(shutdownSignal: AbortSignal): Set<(reason?: unknown) => void> {
  let calls = inFlight.get(shutdownSignal);
  if (calls === undefined) {
    const registered = new Set<(reason?: unknown) => void>();
    shutdownSignal.addEventListener("abort", () => {
      for (const abort of [...registered]) abort(shutdownSignal.reason);
    }, { once: true });
    inFlight.set(shutdownSignal, registered);
    calls = registered;
  }
  return calls;
}
