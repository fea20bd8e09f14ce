import { EventEmitter } from "node:events";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Provider } from "./provider.js";
import { errorFromFailedRead, errorFromTimeout } from "./upstream-error.js";

/**
 * One call's budget: it aborts when the caller goes away or its deadline passes, or when the
 * provider's timeout (which covers retries too) runs out. It is the `signal` undici aborts
 * the upstream request on: an EventEmitter, which undici accepts, because an AbortSignal per
 * call is costly on Node 20 (test/bench/README.md) and the caller's signal already exists.
 */
export class CallBudget extends EventEmitter {
  aborted = false;
  /** What undici rejects with once aborted. */
  reason: ConnectError | undefined;
  /** Epoch ms after which no retry starts: the smaller of the provider's timeout and the caller's deadline. */
  readonly deadline: number;
  readonly #provider: Provider;
  readonly #callerSignal: AbortSignal;
  readonly #timer: NodeJS.Timeout;
  readonly #onCallerAbort = () => this.#abort(false);

  constructor(provider: Provider, callerSignal: AbortSignal, callerTimeoutMs?: number) {
    super();
    this.#provider = provider;
    this.#callerSignal = callerSignal;
    this.deadline = Date.now() + Math.min(provider.timeoutMs, callerTimeoutMs ?? Infinity);
    this.#timer = setTimeout(() => this.#abort(true), provider.timeoutMs);
    if (callerSignal.aborted) this.#abort(false);
    else callerSignal.addEventListener("abort", this.#onCallerAbort, { once: true });
  }

  /** The error to report once aborted: the provider's timeout, or the caller's cancellation or deadline. */
  abortError(): ConnectError {
    return this.reason ?? new ConnectError("the call was aborted", Code.Canceled);
  }

  /** The error for a failure while reading the provider's answer: the abort's, or a broken stream's. */
  failure(error: unknown): ConnectError {
    return this.aborted ? this.abortError() : errorFromFailedRead(this.#provider, error);
  }

  /** Clears the timer; call when the call is over. */
  dispose(): void {
    clearTimeout(this.#timer);
    this.#callerSignal.removeEventListener("abort", this.#onCallerAbort);
  }

  #abort(timedOut: boolean): void {
    if (this.aborted) return;
    this.aborted = true;
    const callerReason: unknown = this.#callerSignal.reason;
    // connect-node aborts the handler's signal with a ConnectError: DEADLINE_EXCEEDED for the caller's deadline.
    this.reason = timedOut
      ? errorFromTimeout(this.#provider)
      : callerReason instanceof ConnectError
        ? callerReason
        : new ConnectError("the caller cancelled the call", Code.Canceled);
    this.dispose();
    this.emit("abort");
  }
}
