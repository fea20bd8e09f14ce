import { randomUUID } from "node:crypto";
import type { DescMethod, JsonObject } from "@bufbuild/protobuf";
import { Code, createContextKey, type ContextKey } from "@connectrpc/connect";
import { newJournalKey } from "./journal-key.js";
import { StreamAssembly } from "./stream-assembly.js";
import type { Door, Protocol } from "./protocol.js";

/** Who made a call, as authentication established it: a key's id or a token's subject, never a secret. */
export interface Principal {
  readonly kind: "key" | "google";
  readonly id: string;
  /** Normalized names of the providers it may call; null or absent: every provider. */
  readonly allowedProviders?: readonly string[] | null;
}

/**
 * The principal of a call made while authentication is off (tests, a local gateway): the
 * journal records such calls under it, and JournalService reads them back for it.
 */
export const ANONYMOUS_PRINCIPAL = "anonymous";

/** Token counts as the provider reported them (`usage` of an answer, or of a stream's last chunk). */
export interface TokenUsage {
  readonly promptTokens?: number;
  readonly completionTokens?: number;
  readonly totalTokens?: number;
}

/** The request as the caller sent it: REST keeps the received bytes, RPC the decoded body. */
export interface RecordedRequest {
  readonly bytes?: Uint8Array;
  readonly body?: JsonObject;
}

/**
 * The provider's answer as the caller got it: a unary answer with the provider's own text, or
 * a stream's events as relayed (RPC: the chunks; REST: the SSE bytes, in whole blocks).
 */
export type RecordedAnswer =
  | { readonly kind: "unary"; readonly text: string; readonly body: JsonObject }
  | { readonly kind: "stream"; readonly events: Array<JsonObject | Uint8Array>; truncated: boolean };

/** How the caller was answered: the code (OK included) and the HTTP status it got. */
export interface CallOutcome {
  readonly code: Code | 0;
  readonly status: number;
  /** The error's description, when it failed. */
  readonly message?: string;
}

/**
 * One call, from the moment its door knew it to the end of its response. Created once per call
 * by the entry (src/call/entry.ts) whatever door it came through; completed by the parts that
 * know each fact (authentication, the service, the relay, the door) and ended exactly once.
 */
export interface CallRecord {
  readonly journalKey: string;
  /** Shared by every signal of the call. */
  readonly requestId: string;
  readonly protocol: Protocol;
  readonly door: Door;
  readonly method: DescMethod;
  /** `/package.Service/Method`. */
  readonly procedure: string;
  /** The REST binding the call came by, e.g. `POST /api/v1/prompts/passthrough/{provider_name}/`; undefined for RPC. */
  readonly route: string | undefined;
  /** Epoch milliseconds. */
  readonly startedAt: number;
  readonly requestHeader: Headers;
  principal: Principal | undefined;
  providerName: string | undefined;
  request: RecordedRequest | undefined;
  answer: RecordedAnswer | undefined;
  upstreamStatus: number | undefined;
  /**
   * How long the provider took to answer, retries included: from `startingUpstream()` until
   * `upstreamAnswered()` (response headers for a stream, the end of the body for a unary call,
   * read whole before it is relayed), or until the call ended first; undefined when it was not called.
   */
  readonly upstreamDurationMs: number | undefined;
  /** When the provider was first called, in milliseconds after `startedAt` (on the clock of `durationMs`); undefined when it was not. */
  readonly upstreamStartMs: number | undefined;
  /** Set for unary answers; derived from the last chunk that reports it for streams. */
  usage: TokenUsage | undefined;
  /** The answer as one object: the provider's, or a stream's events assembled as they were relayed. */
  readonly answerBody: JsonObject | undefined;
  /** Undefined until the door answered; a call that ends without one was cancelled. */
  readonly outcome: CallOutcome | undefined;
  readonly durationMs: number | undefined;
  readonly ended: boolean;
  /**
   * False when the header stage refused the call (authentication, a rate limit): such calls
   * are counted and logged, but neither journaled nor signalled (SPEC section 6).
   */
  readonly admitted: boolean;
  /** True once the provider was sent the request (the first attempt). */
  readonly upstreamStarted: boolean;
  /** Records how the caller is answered; a later outcome (a stream that broke) replaces an earlier one. */
  answered(outcome: CallOutcome): void;
  /** Appends one relayed stream event; past the byte budget events are counted out (`truncated`). */
  relayed(event: JsonObject | Uint8Array, bytes: number): void;
  /** Notes that the provider is about to be called; tells the tracker's upstream listeners once. */
  startingUpstream(): void;
  /** Notes that the provider has answered (or failed to): the end of `upstreamDurationMs`. */
  upstreamAnswered(): void;
}

/** Told of a call's milestones: the provider called (`onUpstreamStart`), the call ended (`onCallEnd`). */
export type CallListener = (call: CallRecord) => void;

/** The context value through which interceptors and handlers reach the call's record. */
export const kCallRecord: ContextKey<CallRecord | undefined> = createContextKey<CallRecord | undefined>(undefined, {
  description: "passthrough call record",
});

export interface CallStart {
  protocol: Protocol;
  door: Door;
  method: DescMethod;
  route?: string;
  requestHeader: Headers;
}

/** A record as its entry holds it: it alone says whether the header stage refused it, and when it ends. */
export interface TrackedCall extends CallRecord {
  refuse(): void;
  end(completed: boolean): void;
}

export interface CallTracker {
  start(init: CallStart): TrackedCall;
  /** Called once for every call when it ends; a listener that throws is reported, not propagated. */
  onCallEnd(listener: CallListener): void;
  /** Called once for a call when the provider is first sent its request, synchronously, before it is sent. */
  onUpstreamStart(listener: CallListener): void;
}

export interface CallTrackerOptions {
  /** Most bytes of stream events one record keeps. */
  maxRecordedBytes: number;
  /** Told of a listener that threw. */
  onListenerError(error: unknown, call: CallRecord): void;
}

/** Creates records and tells the listeners of each one's end. */
export function createCallTracker({ maxRecordedBytes, onListenerError }: CallTrackerOptions): CallTracker {
  const listeners: Listeners = { end: [], upstream: [] };
  return {
    start: (init) => new Call(init, maxRecordedBytes, listeners, onListenerError),
    onCallEnd(listener) {
      listeners.end.push(listener);
    },
    onUpstreamStart(listener) {
      listeners.upstream.push(listener);
    },
  };
}

const cancelled: CallOutcome = { code: Code.Canceled, status: 499, message: "the caller went away before the answer was complete" };

interface Listeners {
  readonly end: CallListener[];
  readonly upstream: CallListener[];
}

class Call implements TrackedCall {
  readonly startedAt = Date.now();
  readonly journalKey = newJournalKey(this.startedAt);
  #requestId: string | undefined;
  readonly protocol: Protocol;
  readonly door: Door;
  readonly method: DescMethod;
  readonly procedure: string;
  readonly route: string | undefined;
  readonly requestHeader: Headers;
  principal: Principal | undefined;
  providerName: string | undefined;
  request: RecordedRequest | undefined;
  answer: RecordedAnswer | undefined;
  upstreamStatus: number | undefined;
  #usage: TokenUsage | undefined;
  #outcome: CallOutcome | undefined;
  #durationMs: number | undefined;
  #ended = false;
  #admitted = true;
  #upstreamStarted = false;
  #upstreamStartedAt = 0;
  #upstreamAnsweredAt: number | undefined;
  #recordedBytes = 0;
  #assembly: StreamAssembly | undefined;
  #assembled: JsonObject | undefined;
  readonly #started = performance.now();

  constructor(
    init: CallStart,
    readonly maxRecordedBytes: number,
    readonly listeners: Listeners,
    readonly onListenerError: CallTrackerOptions["onListenerError"],
  ) {
    this.protocol = init.protocol;
    this.door = init.door;
    this.method = init.method;
    this.procedure = `/${init.method.parent.typeName}/${init.method.name}`;
    this.route = init.route;
    this.requestHeader = init.requestHeader;
  }

  /** Made when first asked for (by the signals): a gateway without sinks never needs one. */
  get requestId(): string {
    return (this.#requestId ??= randomUUID());
  }

  get usage(): TokenUsage | undefined {
    if (this.#usage !== undefined || this.#assembly === undefined) return this.#usage;
    return usageOf({ usage: this.#assembly.usage ?? null });
  }

  get answerBody(): JsonObject | undefined {
    if (this.answer?.kind === "unary") return this.answer.body;
    if (this.#assembly === undefined || this.answer === undefined) return undefined;
    // Assembled once, when first asked for after the last event.
    this.#assembled ??= this.#assembly.result(this.answer.truncated);
    return this.#assembled;
  }

  set usage(usage: TokenUsage | undefined) {
    this.#usage = usage;
  }

  get outcome(): CallOutcome | undefined {
    return this.#outcome;
  }

  get durationMs(): number | undefined {
    return this.#durationMs;
  }

  get ended(): boolean {
    return this.#ended;
  }

  get admitted(): boolean {
    return this.#admitted;
  }

  get upstreamStarted(): boolean {
    return this.#upstreamStarted;
  }

  get upstreamStartMs(): number | undefined {
    return this.#upstreamStarted ? this.#upstreamStartedAt - this.#started : undefined;
  }

  get upstreamDurationMs(): number | undefined {
    if (!this.#upstreamStarted) return undefined;
    return (this.#upstreamAnsweredAt ?? performance.now()) - this.#upstreamStartedAt;
  }

  refuse(): void {
    this.#admitted = false;
  }

  startingUpstream(): void {
    if (this.#upstreamStarted || this.#ended) return;
    this.#upstreamStarted = true;
    this.#upstreamStartedAt = performance.now();
    this.#tell(this.listeners.upstream);
  }

  upstreamAnswered(): void {
    if (this.#upstreamStarted) this.#upstreamAnsweredAt ??= performance.now();
  }

  answered(outcome: CallOutcome): void {
    if (!this.#ended) this.#outcome = outcome;
  }

  relayed(event: JsonObject | Uint8Array, bytes: number): void {
    if (this.#ended) return;
    if (this.answer?.kind !== "stream") this.answer = { kind: "stream", events: [], truncated: false };
    if (this.#recordedBytes + bytes > this.maxRecordedBytes) {
      this.answer.truncated = true;
      return;
    }
    this.#recordedBytes += bytes;
    this.answer.events.push(event);
    this.#assembly ??= new StreamAssembly();
    this.#assembly.add(event);
  }

  /** Ends the record once: `completed` says whether the response was written to its end. */
  end(completed: boolean): void {
    if (this.#ended) return;
    this.#durationMs = performance.now() - this.#started;
    this.upstreamAnswered();
    if (this.#outcome === undefined || (!completed && this.#outcome.code === 0)) this.#outcome = cancelled;
    this.#ended = true;
    this.#tell(this.listeners.end);
  }

  #tell(listeners: readonly CallListener[]): void {
    for (const listener of listeners) {
      try {
        listener(this);
      } catch (error) {
        this.onListenerError(error, this);
      }
    }
  }
}

/** The `usage` of an answer or chunk, in the OpenAI shape every provider here speaks. */
export function usageOf(answer: JsonObject | undefined): TokenUsage | undefined {
  const usage = answer?.usage;
  if (usage === null || typeof usage !== "object" || Array.isArray(usage)) return undefined;
  const count = (value: unknown) => (typeof value === "number" && Number.isFinite(value) ? value : undefined);
  return { promptTokens: count(usage.prompt_tokens), completionTokens: count(usage.completion_tokens), totalTokens: count(usage.total_tokens) };
}
