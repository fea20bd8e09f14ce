import type { JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import type { PassthroughService } from "../gen/smarter/prompt/v1/passthrough_pb.js";
import { API_VERSION, withGatewayFields } from "../service/answer.js";
import type { PassthroughCalls, StartedCall } from "../service/passthrough-call.js";
import { SseRelay } from "../service/sse-relay.js";
import { kHttpExchange, type HttpExchange } from "../transcoding/http-exchange.js";
import { sseErrorEvent } from "./errors.js";

/**
 * Passthrough on its REST binding: the caller's bytes go to the provider as received, and the
 * provider's bytes come back as sent, with `api` and `metadata` spliced in; `"stream": true`
 * relays the provider's SSE blocks byte for byte. The same calls as the RPC service, through
 * the transcoder's HttpExchange.
 */
export function createPassthroughRest(calls: PassthroughCalls): Pick<ServiceImpl<typeof PassthroughService>, "passthrough"> {
  return {
    async passthrough(request, context) {
      const exchange = exchangeOf(context);
      const started = calls.start(request, context, exchange.requestBody);
      const { call } = started;
      try {
        if (started.body.stream === true) {
          await relayStream(started, exchange);
          return {};
        }
        const answer = await calls.complete(started, exchange.requestBody);
        exchange.respondRaw(spliceGatewayFields(answer.text, answer.body, call.journalKey), "application/json");
        // The caller gets the bytes; whoever needs the answer as an object reads it from the call's record.
        return {};
      } finally {
        started.budget.dispose();
      }
    },
  };

  /** The provider's events relayed byte for byte as each completes; a break midway ends with an error event. */
  async function relayStream(started: StartedCall, exchange: HttpExchange) {
    const { call, budget } = started;
    const opened = await calls.openStream(started, exchange.requestBody);
    if (opened.kind === "whole") {
      exchange.respondRaw(spliceGatewayFields(opened.answer.text, opened.answer.body, call.journalKey), "application/json");
      return;
    }
    const broken = (failure: ConnectError) => {
      call.answered({ code: failure.code, status: 200, message: failure.rawMessage });
      return sseErrorEvent(failure, call.journalKey);
    };
    const relay = new SseRelay(opened.response.body, opened.response.maxEventBytes, (error) => broken(budget.failure(error)), (block) => call.relayed(block, block.byteLength));
    await exchange.stream("text/event-stream", relay, broken);
  }
}

function exchangeOf(context: HandlerContext): HttpExchange {
  const exchange = context.values.get(kHttpExchange);
  if (exchange === undefined) throw new ConnectError("internal error: a REST call without its exchange", Code.Internal);
  return exchange;
}

/**
 * The answer's own bytes with `api` and `metadata` spliced in before its closing brace, so a
 * REST caller gets exactly what the provider sent (number formats, key order, escapes) plus
 * the two keys. When the provider already used either key, they are replaced by re-serializing.
 */
function spliceGatewayFields(text: string, answer: JsonObject, journalKey: string): string {
  if ("api" in answer || "metadata" in answer) return JSON.stringify(withGatewayFields(answer, journalKey));
  const close = text.lastIndexOf("}");
  const fields = `"api":"${API_VERSION}","metadata":{"key":"${journalKey}"}`;
  const empty = Object.keys(answer).length === 0;
  return `${text.slice(0, close)}${empty ? "" : ","}${fields}${text.slice(close)}`;
}
