import { createContextKey, type ConnectError, type ContextKey } from "@connectrpc/connect";

/**
 * Present in HandlerContext.values when a call arrived on a REST binding. Like
 * google.api.HttpBody, it lets a handler answer with raw bytes.
 */
export interface HttpExchange {
  readonly httpMethod: string;
  /** The request path without the query. */
  readonly path: string;
  /** The request body exactly as received (empty when the binding has no body). */
  readonly requestBody: Uint8Array;
  /**
   * Answer with these bytes instead of the serialized response message. Status 200; the
   * handler context's response headers apply. An error thrown by the handler afterwards wins.
   */
  respondRaw(body: Uint8Array | string, contentType: string): void;
  /**
   * Take over the response to stream it: writes status 200 and the handler context's response
   * headers (with the first chunk when it comes within the same turn of the event loop, else
   * alone right after it), then each chunk as it comes (honouring backpressure), and ends the
   * response. Resolves when the last chunk is written; rejects with CANCELED if the caller goes
   * away (or with the reason of the deadline or shutdown that aborts the call), and then stops
   * iterating `chunks`, calling its return(). If `chunks` throws after headers were sent, the
   * response is ended and the promise rejects with that error. When the call is aborted while
   * the caller is still there (the shutdown deadline passed), `onAbort` gives the last bytes
   * the response ends with (an SSE error event), so that the caller can tell the stream was cut.
   */
  stream(contentType: string, chunks: AsyncIterable<Uint8Array | string>, onAbort?: (reason: ConnectError) => Uint8Array | string): Promise<void>;
}

/** The context key under which the REST transcoder puts the call's HttpExchange. */
export const kHttpExchange: ContextKey<HttpExchange | undefined> = createContextKey<
  HttpExchange | undefined
>(undefined, { description: "passthrough REST HTTP exchange" });
