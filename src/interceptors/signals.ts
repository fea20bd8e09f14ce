import { randomUUID } from "node:crypto";
import type { JsonObject } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import { isoTimeOf } from "../call/iso-time.js";
import { kCallRecord, type CallListener, type CallRecord } from "../call/record.js";
import { codeToString } from "../connect-internals.js";
import { normalizeProviderName } from "../providers/provider.js";
import { callsProvider } from "../service/provider-methods.js";
import { withFirst } from "./first-message.js";
import type { SignalDispatcher } from "../signals/dispatcher.js";
import { EmittedEvent, type SignalEvent, type SignalName } from "../signals/sink.js";

export interface SignalOptions {
  dispatcher: SignalDispatcher;
  /** Put request and response bodies in `data` (`signals.includeBodies`). */
  includeBodies: boolean;
  /** This instance, as events name it (`source`). */
  source: string;
}

/** Signal emission's three parts, each installed where its moment is seen. */
export interface Signals {
  /** `chat_started`, when a Passthrough call reaches its handler. */
  readonly interceptor: Interceptor;
  /** `chat_completion_request`, just before the provider is sent the request. */
  readonly onUpstreamStart: CallListener;
  /** `chat_completion_response` or `chat_response_failure`, then `chat_finished`. */
  readonly onCallEnd: CallListener;
}

const utf8 = new TextDecoder();

/**
 * The lifecycle signals of SPEC section 6 for every admitted Passthrough and PassthroughStream
 * call (ListProviders calls no provider: none), on every protocol: `chat_started` first (emitted at the end when the call failed before its handler,
 * an invalid body say), `chat_finished` last, each exactly once, all with the call's
 * `request_id` and `journal_key`. Emitting only queues: the dispatcher delivers.
 */
export function createSignalInterceptor({ dispatcher, includeBodies, source }: SignalOptions): Signals {
  // A call's events so far, from chat_started on: committed together when it ends.
  const emitted = new WeakMap<CallRecord, SignalEvent[]>();

  // An event with a body's text carries it (BODY_JSON): the dispatcher weighs the event by it for its queue bound.
  const emit = (call: CallRecord, signal: SignalName, data: JsonObject, provider = call.providerName ?? null, bodyJson?: string) => {
    const event = new EmittedEvent(
      {
        signal,
        id: randomUUID(),
        request_id: call.requestId,
        journal_key: call.journalKey,
        time: isoTimeOf(Date.now()),
        provider,
        protocol: call.protocol,
        principal: call.principal?.id ?? null,
        source,
        data,
      },
      bodyJson,
    );
    dispatcher.emit(event);
    emitted.get(call)?.push(event);
  };
  const start = (call: CallRecord, provider?: string) => {
    if (emitted.has(call)) return;
    emitted.set(call, []);
    emit(call, "chat_started", {}, provider ?? call.providerName ?? null);
  };
  const signalled = (call: CallRecord) => call.admitted && callsProvider(call.method);

  const startWith = (call: CallRecord, message: unknown) => {
    const asked = (message as { providerName?: unknown }).providerName;
    start(call, typeof asked === "string" ? normalizeProviderName(asked) : undefined);
  };
  const interceptor: Interceptor = (next) => (req) => {
    const call = req.contextValues.get(kCallRecord);
    if (call === undefined || !signalled(call)) return next(req);
    if (!req.stream) {
      startWith(call, req.message);
      return next(req);
    }
    return next({ ...req, message: withFirst(req.message, (message) => startWith(call, message)) });
  };

  const onUpstreamStart: CallListener = (call) => {
    if (!signalled(call)) return;
    start(call);
    const data: JsonObject = {};
    const request = call.request;
    if (!includeBodies || request?.body === undefined) return emit(call, "chat_completion_request", data);
    data.body = request.body;
    // REST's bytes were parsed into that body, so they are its JSON as the caller wrote it.
    emit(call, "chat_completion_request", data, undefined, request.bytes && utf8.decode(request.bytes));
  };

  const onCallEnd: CallListener = (call) => {
    if (!signalled(call)) return;
    start(call);
    const outcome = call.outcome ?? { code: 0, status: 200 };
    const data: JsonObject = {};
    if (call.upstreamStatus !== undefined) data.upstream_status = call.upstreamStatus;
    if (outcome.code === 0) {
      const usage = call.usage;
      if (usage !== undefined) data.usage = { prompt_tokens: usage.promptTokens ?? null, completion_tokens: usage.completionTokens ?? null, total_tokens: usage.totalTokens ?? null };
      if (includeBodies) data.body = call.answerBody ?? null;
      emit(call, "chat_completion_response", data, undefined, includeBodies && call.answer?.kind === "unary" ? call.answer.text : undefined);
    } else {
      Object.assign(data, { code: codeToString(outcome.code), status: outcome.status, message: outcome.message ?? "" });
      emit(call, "chat_response_failure", data);
    }
    emit(call, "chat_finished", { code: outcome.code === 0 ? "ok" : codeToString(outcome.code), status: outcome.status, duration_ms: call.durationMs ?? 0 });
    // Before the answer's last bytes leave (the record ends first): a caller that got its answer has its signals on disk.
    dispatcher.commit(emitted.get(call) ?? []);
    emitted.delete(call);
  };

  return { interceptor, onUpstreamStart, onCallEnd };
}
