import { Code, ConnectError } from "@connectrpc/connect";
import type { CallRecord } from "../call/record.js";
import type { HttpExchange } from "./http-exchange.js";
import { canRespond, setResponseHeaders, type NodeResponse } from "../node-http/response.js";

/**
 * The HttpExchange of one REST call. The transcoder reads `raw` and `streaming` after the
 * handler returns to decide who writes the response.
 */
export class NodeHttpExchange implements HttpExchange {
  /** Set by respondRaw: the body to send instead of the response message. */
  raw: { body: Uint8Array | string; contentType: string } | undefined;
  /** Set by stream: settles when the streamed response is over. */
  streaming: Promise<void> | undefined;

  constructor(
    readonly httpMethod: string,
    readonly path: string,
    readonly requestBody: Uint8Array,
    private readonly res: NodeResponse,
    private readonly responseHeader: Headers,
    /** The handler context's signal: aborted when the caller goes away, at the deadline or on shutdown. */
    private readonly signal: AbortSignal,
    /** Told that the call was answered 200 when a stream's head goes out. */
    private readonly record?: CallRecord,
  ) {}

  respondRaw(body: Uint8Array | string, contentType: string): void {
    if (this.streaming !== undefined) {
      throw new ConnectError("respondRaw() after stream()", Code.Internal);
    }
    this.raw = { body, contentType };
  }

  stream(contentType: string, chunks: AsyncIterable<Uint8Array | string>, onAbort?: (reason: ConnectError) => Uint8Array | string): Promise<void> {
    if (this.streaming !== undefined || this.raw !== undefined || !canRespond(this.res)) {
      return Promise.reject(new ConnectError("the response was already taken over", Code.Internal));
    }
    this.streaming = this.writeStream(contentType, chunks, onAbort);
    // The transcoder awaits it too; a handler that doesn't must not cause an unhandled rejection.
    this.streaming.catch(() => {});
    return this.streaming;
  }

  private async writeStream(contentType: string, chunks: AsyncIterable<Uint8Array | string>, onAbort?: (reason: ConnectError) => Uint8Array | string): Promise<void> {
    const { res } = this;
    const gone = abortable(this.signal);
    setResponseHeaders(res, this.responseHeader);
    res.setHeader("content-type", contentType);
    res.writeHead(200);
    this.record?.answered({ code: 0, status: 200 });
    // The headers go with the first chunk when it is already there (one packet, one system
    // call), else on their own right after this turn of the event loop, not with a late chunk.
    const flush = setImmediate(() => (res as { flushHeaders?: () => void }).flushHeaders?.());
    const iterator = chunks[Symbol.asyncIterator]();
    try {
      for (;;) {
        if (this.signal.aborted) throw this.signal.reason;
        const next = await gone.race(iterator.next());
        clearImmediate(flush);
        if (next.done === true) break;
        if (!(res as { write(chunk: Uint8Array | string): boolean }).write(next.value)) {
          await gone.race(drain(res));
        }
      }
    } catch (e) {
      if (this.signal.aborted) {
        iterator.return?.().catch(() => {});
        const reason = ConnectError.from(this.signal.reason, Code.Canceled);
        if (onAbort !== undefined && !res.destroyed && !res.writableEnded) res.end(onAbort(reason));
        throw reason;
      }
      res.end();
      throw e;
    } finally {
      clearImmediate(flush);
      gone.dispose();
    }
    res.end();
  }
}

/**
 * `race(p)` settles as `p` does, or rejects with the signal's reason once it aborts. Unlike
 * Promise.race against one long-lived promise, nothing accumulates over a long stream: only the
 * pending step is ever wired to the signal.
 */
function abortable(signal: AbortSignal): { race<T>(step: Promise<T>): Promise<T>; dispose(): void } {
  let rejectPending: ((reason: unknown) => void) | undefined;
  const onAbort = () => rejectPending?.(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  return {
    race<T>(step: Promise<T>): Promise<T> {
      if (signal.aborted) {
        step.catch(() => {});
        return Promise.reject(signal.reason);
      }
      return new Promise<T>((resolve, reject) => {
        rejectPending = reject;
        const settle = () => {
          if (rejectPending === reject) rejectPending = undefined;
        };
        step.then(
          (value) => (settle(), resolve(value)),
          (error: unknown) => (settle(), reject(error)),
        );
      });
    },
    dispose: () => signal.removeEventListener("abort", onAbort),
  };
}

function drain(res: NodeResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}
