import type { JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { PassthroughService } from "../gen/smarter/prompt/v1/passthrough_pb.js";
import type { Provider } from "../providers/provider.js";
import type { ProviderRegistry } from "../providers/registry.js";
import { parseSse } from "../providers/sse-parser.js";
import type { CallBudget, UpstreamClient, UpstreamResponse } from "../providers/upstream.js";
import { errorFromBadAnswer } from "../providers/upstream-error.js";
import type { Logger } from "../logging/logger.js";
import { kHttpExchange, type HttpExchange } from "../transcoding/http-exchange.js";
import { parseAnswer, spliceGatewayFields, withGatewayFields } from "./answer.js";
import { JOURNAL_KEY_HEADER, newJournalKey } from "./journal-key.js";
import { sseErrorEvent } from "./rest-errors.js";
import { SseRelay } from "./sse-relay.js";

export interface PassthroughServiceOptions {
  providers: ProviderRegistry;
  upstream: UpstreamClient;
  logger: Logger;
  /** The seed's `should_log` switch, read on every call so it can be flipped while serving. */
  logging: { logPrompt: boolean };
}

/**
 * The PassthroughService handlers, shared by every protocol: connect-node serves them over
 * gRPC, gRPC-Web and Connect, the transcoder over REST. On REST the caller's bytes are
 * forwarded as received and the provider's bytes answered as sent (through the HttpExchange).
 */
export function createPassthroughService({ providers, upstream, logger, logging }: PassthroughServiceOptions): ServiceImpl<typeof PassthroughService> {
  /** Starts a call: its journal key (sent as a header at once), its provider, its body. */
  function begin(request: { providerName: string; body?: JsonObject }, context: HandlerContext) {
    const journalKey = newJournalKey();
    context.responseHeader.set(JOURNAL_KEY_HEADER, journalKey);
    const provider = providers.resolve(request.providerName);
    if (request.body === undefined) {
      throw new ConnectError("body is required: the chat-completion request as a JSON object", Code.InvalidArgument);
    }
    if (logging.logPrompt) logger.info({ journalKey, provider: provider.name, prompt: request.body }, "prompt");
    return { journalKey, provider, body: request.body };
  }

  async function complete(provider: Provider, payload: string | Uint8Array, budget: CallBudget) {
    const response = await upstream.send(provider, payload, budget, "buffered");
    const text = await readBody(response, budget);
    return { text, answer: parseAnswer(provider, text) };
  }

  return {
    async passthrough(request, context) {
      const { journalKey, provider, body } = begin(request, context);
      const exchange = context.values.get(kHttpExchange);
      if (body.stream === true && !exchange) {
        throw new ConnectError(
          '"stream": true needs PassthroughStream: Passthrough returns one whole answer',
          Code.InvalidArgument,
        );
      }
      const budget = upstream.budget(provider, context.signal, context.timeoutMs());
      try {
        if (!exchange) {
          const { answer } = await complete(provider, JSON.stringify(body), budget);
          return { body: withGatewayFields(answer, journalKey) };
        }
        if (body.stream === true) {
          await relayStream(provider, exchange, budget, journalKey);
        } else {
          const { text, answer } = await complete(provider, exchange.requestBody, budget);
          exchange.respondRaw(spliceGatewayFields(text, answer, journalKey), "application/json");
        }
        return {};
      } finally {
        budget.dispose();
      }
    },

    async *passthroughStream(request, context) {
      const { provider, body } = begin(request, context);
      const budget = upstream.budget(provider, context.signal, context.timeoutMs());
      try {
        const response = await upstream.send(provider, JSON.stringify({ ...body, stream: true }), budget, "stream");
        if (!isEventStream(response)) {
          // The provider ignored `stream`: its whole answer is the one chunk.
          yield { chunk: parseAnswer(provider, await readBody(response, budget)) };
          return;
        }
        try {
          for await (const event of parseSse(response.body, response.maxEventBytes)) {
            if (event.data === "[DONE]") return;
            yield { chunk: parseChunk(provider, event.data) };
          }
        } catch (error) {
          throw budget.failure(error);
        }
      } finally {
        budget.dispose();
      }
    },
  };

  /** REST `"stream": true`: the provider's events relayed byte for byte as each completes. */
  async function relayStream(provider: Provider, exchange: HttpExchange, budget: CallBudget, journalKey: string) {
    const response = await upstream.send(provider, exchange.requestBody, budget, "stream");
    if (!isEventStream(response)) {
      const text = await readBody(response, budget);
      exchange.respondRaw(spliceGatewayFields(text, parseAnswer(provider, text), journalKey), "application/json");
      return;
    }
    await exchange.stream("text/event-stream", new SseRelay(response.body, response.maxEventBytes, (error) => sseErrorEvent(budget.failure(error), journalKey)));
  }
}

function parseChunk(provider: Provider, data: string): JsonObject {
  try {
    const chunk: unknown = JSON.parse(data);
    if (chunk !== null && typeof chunk === "object" && !Array.isArray(chunk)) return chunk as JsonObject;
  } catch {
    // reported below
  }
  throw errorFromBadAnswer(provider, "a stream event that is not a JSON object");
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
