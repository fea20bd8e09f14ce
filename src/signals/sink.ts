import type { JsonObject } from "@bufbuild/protobuf";
import type { Protocol } from "../call/protocol.js";
import type { Logger } from "../logging/logger.js";

/** The five lifecycle signals of the seed (SPEC section 6), in the order a successful call emits them. */
export type SignalName = "chat_started" | "chat_completion_request" | "chat_completion_response" | "chat_response_failure" | "chat_finished";

/** One event as every sink delivers it: plain JSON, no secret. */
export interface SignalEvent {
  readonly signal: SignalName;
  /** Unique per event: the key for de-duplication (at-least-once delivery). */
  readonly id: string;
  /** Shared by one call's events. */
  readonly request_id: string;
  readonly journal_key: string;
  /** RFC 3339. */
  readonly time: string;
  /** The normalized provider name; null when the call failed before one was known. */
  readonly provider: string | null;
  readonly protocol: Protocol;
  /** Key id or token subject; null when authentication is off. */
  readonly principal: string | null;
  /** The instance that emitted it (CloudEvents `source`). */
  readonly source: string;
  readonly data: JsonObject;
  /**
   * `data.body` as the JSON text it arrived as (the caller's REST body, a provider's unary
   * answer), when the gateway has it: `eventJson` puts these bytes in as they are, which is
   * both cheaper and more faithful than serializing the parsed body again. Not part of the JSON.
   */
  readonly [BODY_JSON]?: string;
}

/** The key of `SignalEvent`'s body text. */
export const BODY_JSON: unique symbol = Symbol("passthrough.signal.bodyJson");

/**
 * An event as the signal interceptor emits it: a SignalEvent whose JSON texts, once made, are
 * kept in private fields, so that the write-ahead log and every sink share one serialization.
 * Private fields cost nothing per event beyond their slots (defining a hidden property on each
 * event did), and JSON, spreads and comparisons do not see them.
 */
export class EmittedEvent implements SignalEvent {
  readonly signal: SignalName;
  readonly id: string;
  readonly request_id: string;
  readonly journal_key: string;
  readonly time: string;
  readonly provider: string | null;
  readonly protocol: Protocol;
  readonly principal: string | null;
  readonly source: string;
  readonly data: JsonObject;
  readonly #bodyJson: string | undefined;
  #json: string | undefined;
  #jsonWithoutBody: string | undefined;

  /** Fields in SignalEvent's order, which is their order in the JSON. */
  constructor(fields: Omit<SignalEvent, typeof BODY_JSON>, bodyJson?: string) {
    this.signal = fields.signal;
    this.id = fields.id;
    this.request_id = fields.request_id;
    this.journal_key = fields.journal_key;
    this.time = fields.time;
    this.provider = fields.provider;
    this.protocol = fields.protocol;
    this.principal = fields.principal;
    this.source = fields.source;
    this.data = fields.data;
    this.#bodyJson = bodyJson;
  }

  get [BODY_JSON](): string | undefined {
    return this.#bodyJson;
  }

  json(): string {
    return (this.#json ??= serialized(this));
  }

  jsonWithoutBody(): string {
    return (this.#jsonWithoutBody ??= serializedWithoutBody(this));
  }
}

/**
 * The event's JSON (`JSON.stringify(event)`), made once for an emitted event however many sinks
 * (and the dispatcher's write-ahead log) ask for it: an event does not change once emitted. An
 * event with a body text has it written in as it is, `data` last and `body` last in it.
 */
export function eventJson(event: SignalEvent): string {
  return event instanceof EmittedEvent ? event.json() : serialized(event);
}

/** The event's JSON without `data.body`, as a sink that must not keep bodies writes it; made once too. */
export function eventJsonWithoutBody(event: SignalEvent): string {
  return event instanceof EmittedEvent ? event.jsonWithoutBody() : serializedWithoutBody(event);
}

function serialized(event: SignalEvent): string {
  const body = event[BODY_JSON];
  return body === undefined ? JSON.stringify(event) : spliced(event, body);
}

function serializedWithoutBody(event: SignalEvent): string {
  if (event.data.body === undefined) return eventJson(event);
  const { body: _body, ...data } = event.data;
  return JSON.stringify({ ...event, data });
}

/** The JSON of an event whose body is given as text: the rest serialized, the text written in as it is, `data` last and `body` last in it. */
function spliced(event: SignalEvent, body: string): string {
  const { data, ...head } = event;
  const { body: _parsed, ...rest } = data;
  const fields = JSON.stringify(rest);
  return `${JSON.stringify(head).slice(0, -1)},"data":${fields.length > 2 ? `${fields.slice(0, -1)},` : "{"}"body":${body}}}`;
}

/** A batch as one JSON array, from each event's own JSON. */
export function eventsJson(events: readonly SignalEvent[]): string {
  return `[${events.map(eventJson).join(",")}]`;
}

/**
 * Where signals go (SPEC section 6): one small interface, implemented by the built-in sinks in
 * `sinks/` and by a custom module. The dispatcher (dispatcher.ts) calls `deliver` with one batch
 * at a time, never two at once, and retries a batch that failed with backoff; a sink itself
 * neither queues nor retries. Implementations run test/signals/sink.contract.ts.
 */
export interface SignalSink {
  /** Names the sink in logs, metrics and readiness, e.g. `webhook`, `nats`. */
  readonly name: string;
  /**
   * Delivers the batch, in order. Resolves once every event is accepted by the other side;
   * rejects (any error) to have the whole batch retried. Stops early when `signal` aborts.
   * Connects lazily: a sink that cannot reach its server at start just fails its first batches.
   */
  deliver(events: readonly SignalEvent[], signal: AbortSignal): Promise<void>;
  /**
   * Optional, for a sink whose delivery is an append to a local file that waits on nothing
   * else (the log sink with a `path`): takes one call's events, all of them, as the call ends,
   * and has them written by the end of that turn (`appendInTurn`), before its answer's last
   * bytes, so that the dispatcher neither queues them nor writes them to its write-ahead log
   * for this sink. Then it calls `done`, once: with an error when they were not written. An
   * error, or throwing, hands them to `deliver`, queued and retried as usual.
   */
  deliverNow?(events: readonly SignalEvent[], done: (error?: unknown) => void): void;
  /**
   * Releases connections; called once, after the last delivery. Settles promptly even when the
   * server does not answer (nothing is left to send), so that shutdown keeps its deadline.
   */
  close(): Promise<void>;
}

/** What every sink factory is given besides its own configuration. */
export interface SinkContext {
  readonly logger: Logger;
  /**
   * The gateway's logging settings as they are now (SIGHUP changes them): the log sink keeps
   * the bodies of events emitted while `logPrompt` is on, since `logPromptSince` (epoch ms).
   */
  readonly logging?: { readonly logPrompt: boolean; readonly logPromptSince: number };
}

/**
 * A custom sink's module (`{ type: module, path }`): its default export (or `createSink`) is a
 * factory called with the sink's `options` from the config and the context.
 */
export type SinkFactory<Options = Record<string, unknown>> = (options: Options, context: SinkContext) => SignalSink | Promise<SignalSink>;
