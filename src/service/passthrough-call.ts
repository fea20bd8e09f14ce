import type { JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { kCallRecord, usageOf, type CallRecord } from "../call/record.js";
import type { Logger } from "../logging/logger.js";
import type { Provider } from "../providers/provider.js";
import type { ProviderRegistry } from "../providers/registry.js";
import type { CallBudget, StreamedResponse, UpstreamClient, UpstreamResponse } from "../providers/upstream.js";
import { UpstreamError } from "../providers/upstream-error.js";
import { relayTraceContext, type UpstreamTraceContext } from "../telemetry/trace-context.js";
import { parseAnswer } from "./answer.js";

/** A call under way: its record, provider, body and budget (dispose it when the call is over). */
export interface StartedCall {
  readonly call: CallRecord;
  readonly provider: Provider;
  readonly body: JsonObject;
  readonly budget: CallBudget;
}

/** A provider's whole answer: its text as sent, and that text parsed. */
export interface Answer {
  readonly text: string;
  readonly body: JsonObject;
}

/** What a provider answered a stream request with: its stream, or one whole answer when it ignored `stream`. */
export type StreamOpening = { readonly kind: "stream"; readonly response: StreamedResponse } | { readonly kind: "whole"; readonly answer: Answer };

export interface PassthroughCalls {
  /**
   * Starts a call: resolves its provider (NOT_FOUND), checks its body, records both.
   * `bytes`: the request as received, when the door kept it (REST).
   */
  start(request: { providerName: string; body?: JsonObject }, context: HandlerContext, bytes?: Uint8Array): StartedCall;
  /** Sends `payload` and reads the whole answer, recording it. */
  complete(started: StartedCall, payload: string | Uint8Array): Promise<Answer>;
  /** Sends `payload` for a stream. */
  openStream(started: StartedCall, payload: string | Uint8Array): Promise<StreamOpening>;
}

export interface PassthroughCallsOptions {
  providers: ProviderRegistry;
  upstream: UpstreamClient;
  logger: Logger;
  /** The seed's `should_log` switch, read on every call so it can be flipped while serving. */
  logging: { logPrompt: boolean };
  /** The trace context the provider's request carries. Default: the caller's, relayed unchanged. */
  traceContext?: UpstreamTraceContext;
}

/** The steps every Passthrough call takes, whatever protocol it came on. */
export function createPassthroughCalls({ providers, upstream, logger, logging, traceContext = relayTraceContext }: PassthroughCallsOptions): PassthroughCalls {
  return {
    start(request, context, bytes) {
      const call = callRecordOf(context);
      call.providerName = request.providerName;
      const provider = providers.resolve(request.providerName);
      call.providerName = provider.name;
      if (request.body === undefined) {
        throw new ConnectError("body is required: the chat-completion request as a JSON object", Code.InvalidArgument);
      }
      call.request = { bytes, body: request.body };
      if (logging.logPrompt) logger.info({ journalKey: call.journalKey, provider: provider.name, prompt: request.body }, "prompt");
      return { call, provider, body: request.body, budget: upstream.budget(provider, context.signal, context.timeoutMs()) };
    },

    async complete(started, payload) {
      const { call, provider, budget } = started;
      call.startingUpstream();
      const headers = traceContext.upstreamHeaders(call, provider);
      const response = await recordingStatus(call, () => upstream.send(provider, payload, budget, "buffered", headers));
      return recordAnswer(started, await readBody(response, started.budget));
    },

    async openStream(started, payload) {
      const { call, provider, budget } = started;
      call.startingUpstream();
      const headers = traceContext.upstreamHeaders(call, provider);
      const response = await recordingStatus(call, () => upstream.send(provider, payload, budget, "stream", headers));
      if (isEventStream(response)) return { kind: "stream", response };
      return { kind: "whole", answer: recordAnswer(started, await readBody(response, started.budget)) };
    },
  };
}

/** The provider's answer to `send`, its status and when it came recorded, also when it was an error. */
async function recordingStatus<T extends UpstreamResponse>(call: CallRecord, send: () => Promise<T>): Promise<T> {
  try {
    const response = await send();
    call.upstreamStatus = response.status;
    return response;
  } catch (error) {
    if (error instanceof ConnectError && error.cause instanceof UpstreamError) call.upstreamStatus = error.cause.upstreamStatus;
    throw error;
  } finally {
    call.upstreamAnswered();
  }
}

/** The record every door puts in the handler context; a call without one is a bug of ours. */
function callRecordOf(context: HandlerContext): CallRecord {
  const call = context.values.get(kCallRecord);
  if (call === undefined) throw new ConnectError("internal error: a call without its record", Code.Internal);
  return call;
}

function recordAnswer({ call, provider }: StartedCall, text: string): Answer {
  const body = parseAnswer(provider, text);
  call.answer = { kind: "unary", text, body };
  call.usage = usageOf(body);
  return { text, body };
}

function isEventStream(response: UpstreamResponse): boolean {
  const type = response.headers["content-type"];
  return typeof type === "string" && type.startsWith("text/event-stream");
}

async function readBody(response: UpstreamResponse, budget: CallBudget): Promise<string> {
  try {
    return await response.text();
  } catch (error) {
    throw budget.failure(error);
  }
}
