import type { JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { PassthroughService } from "../gen/smarter/prompt/v1/passthrough_pb.js";
import type { Provider } from "../providers/provider.js";
import { parseSse } from "../providers/sse-parser.js";
import { errorFromBadAnswer } from "../providers/upstream-error.js";
import { withGatewayFields } from "./answer.js";
import type { PassthroughCalls } from "./passthrough-call.js";

/**
 * PassthroughService as gRPC, gRPC-Web and Connect serve it: one whole answer, or the
 * provider's stream one chunk per message. REST serves the same calls through its own adapter
 * (src/rest/), which keeps the caller's and the provider's bytes as they are. ListProviders
 * calls no provider: it is src/service/provider-list.ts.
 */
export function createPassthroughService(calls: PassthroughCalls): Omit<ServiceImpl<typeof PassthroughService>, "listProviders"> {
  return {
    async passthrough(request, context) {
      const started = calls.start(request, context);
      try {
        if (started.body.stream === true) {
          throw new ConnectError('"stream": true needs PassthroughStream: Passthrough returns one whole answer', Code.InvalidArgument);
        }
        const answer = await calls.complete(started, JSON.stringify(started.body));
        return { body: withGatewayFields(answer.body, started.call.journalKey) };
      } finally {
        started.budget.dispose();
      }
    },

    async *passthroughStream(request, context) {
      const started = calls.start(request, context);
      const { call, provider, budget } = started;
      try {
        const opened = await calls.openStream(started, JSON.stringify({ ...started.body, stream: true }));
        if (opened.kind === "whole") {
          // The provider ignored `stream`: its whole answer is the one chunk.
          yield { chunk: opened.answer.body };
          return;
        }
        try {
          for await (const event of parseSse(opened.response.body, opened.response.maxEventBytes)) {
            if (event.data === "[DONE]") return;
            const chunk = parseChunk(provider, event.data);
            call.relayed(chunk, event.data.length);
            yield { chunk };
          }
        } catch (error) {
          throw budget.failure(error);
        }
      } finally {
        budget.dispose();
      }
    },
  };
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
