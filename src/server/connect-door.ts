import { Code, ConnectError, createConnectRouter, createContextValues, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip, universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import type { CallDoor } from "../call/entry.js";
import type { Protocol } from "../call/protocol.js";
import { kCallRecord } from "../call/record.js";
import { parseConnectTimeout, parseGrpcTimeout, type UniversalHandler, type UniversalServerRequest } from "../connect-internals.js";
import { MAX_TIMER_MS } from "../node-http/handler-context.js";
import { observeOutcome } from "./connect-outcome.js";
import { withGrpcWebText } from "./grpc-web-text.js";

export interface ConnectDoorOptions {
  routes(router: ConnectRouter): void;
  interceptors: Interceptor[];
  readMaxBytes: number;
  shutdownSignal?: AbortSignal;
  /** Told of a handler that failed outside the call (connect-node logs these to the console). */
  onError(error: unknown, procedure: string): void;
}

const acceptCompression = [compressionGzip, compressionBrotli];

/**
 * connect-node's handlers for everything the other doors leave (gRPC-Web, streams, compressed
 * or JSON gRPC, Connect GET, gRPC-Web's text mode, which connect lacks), with connectNodeAdapter's defaults, so that a call's record
 * travels in the context values, a refusal is answered in the protocol's own form without the
 * body being read, and the outcome the caller gets is recorded whichever step produced it.
 */
export function createConnectDoor({ routes, interceptors, readMaxBytes, shutdownSignal, onError }: ConnectDoorOptions): CallDoor {
  const router = createConnectRouter({ interceptors, readMaxBytes, shutdownSignal, acceptCompression });
  routes(router);
  const handlers = new Map<string, UniversalHandler>();
  for (const handler of router.handlers) handlers.set(handler.requestPath, handler);

  return {
    match(req, res) {
      const url = req.url ?? "";
      const q = url.indexOf("?");
      const handler = handlers.get(q < 0 ? url : url.slice(0, q));
      if (handler === undefined) return undefined;
      const protocol = protocolOf(req.headers["content-type"]);
      return {
        protocol,
        door: "connect-node",
        method: handler.method,
        serve(record, refusal) {
          const contextValues = createContextValues();
          if (record !== undefined) contextValues.set(kCallRecord, record);
          let request = universalRequestFromNodeRequest(req, res, undefined, contextValues);
          clampTimeout(request.header);
          if (refusal !== undefined) request = refused(request, refusal);
          // The outcome is read from the binary gRPC-Web answer, before any text encoding.
          const observed = record === undefined ? handler : (r: UniversalServerRequest) => handler(r).then((response) => observeOutcome(response, protocol, record));
          withGrpcWebText(observed)(request)
            .then((response) => universalResponseToNodeResponse(response, res))
            .catch((reason: unknown) => {
              if (ConnectError.from(reason).code !== Code.Aborted) onError(reason, handler.requestPath);
            });
        },
      };
    },
  };
}

/** The protocol connect negotiates for this content type (Connect GET has none). */
function protocolOf(contentType: string | undefined): Protocol {
  if (contentType === undefined || !contentType.toLowerCase().startsWith("application/grpc")) return "connect";
  return contentType.toLowerCase().startsWith("application/grpc-web") ? "grpc-web" : "grpc";
}

/**
 * A deadline past a Node.js timer's reach (gRPC allows up to 99999999H; some clients send that
 * for "none") is clamped to the longest one: connect would arm a timer that fires at once.
 */
function clampTimeout(header: Headers): void {
  const grpc = parseGrpcTimeout(header.get("grpc-timeout"), Number.MAX_SAFE_INTEGER).timeoutMs;
  if (grpc !== undefined && grpc > MAX_TIMER_MS) header.set("grpc-timeout", `${Math.floor(MAX_TIMER_MS / 60_000)}M`);
  const connect = parseConnectTimeout(header.get("connect-timeout-ms"), Number.MAX_SAFE_INTEGER).timeoutMs;
  if (connect !== undefined && connect > MAX_TIMER_MS) header.set("connect-timeout-ms", String(MAX_TIMER_MS));
}

/**
 * The request as connect will answer a refusal: its body throws the refusal when connect
 * reads it, so the error goes out in the protocol's own form and no byte of the body is read.
 * The headers that connect checks first (deadline, encoding, length) are dropped so that
 * the refusal is the answer.
 */
function refused(request: UniversalServerRequest, refusal: ConnectError): UniversalServerRequest {
  const header = new Headers(request.header);
  for (const name of ["content-length", "grpc-timeout", "connect-timeout-ms", "grpc-encoding", "content-encoding", "connect-content-encoding"]) header.delete(name);
  const body: AsyncIterable<Uint8Array> = {
    [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(refusal) }),
  };
  return { ...request, header, body };
}
