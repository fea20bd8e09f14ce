import type { Readable } from "node:stream";
import { SseEventTooLargeError } from "../providers/sse-parser.js";
import { createSseSplitter, type SseSplitter } from "../providers/sse-splitter.js";

/**
 * A provider's SSE body as whole blocks, in order, for HttpExchange.stream: whole blocks only,
 * so that a stream broken midway can end with a well-formed error event (`onError`'s bytes)
 * rather than half an event. It reads the body by its 'data' events, with one promise per
 * step, where an async generator over the Readable's own async iterator costs three (the
 * saving is measured in test/bench/README.md). While blocks wait unread (the caller is
 * slow), the body is paused. A block past `maxEventBytes` ends the stream as a broken one
 * does, after the whole blocks before it, and destroys the body: nothing more is read.
 */
export class SseRelay implements AsyncIterableIterator<Uint8Array> {
  readonly #body: Readable;
  readonly #splitter: SseSplitter;
  readonly #onError: (error: unknown) => Uint8Array | string;
  readonly #queue: Uint8Array[] = [];
  #ended = false;
  #waiting: ((result: IteratorResult<Uint8Array>) => void) | undefined;
  readonly #onBlock: ((block: Uint8Array) => void) | undefined;

  /**
   * `onError` gives the bytes that end a stream broken midway (an SSE error event); `onBlock`
   * is told of the provider's bytes as they are handed on, in whole blocks.
   */
  constructor(body: Readable, maxEventBytes: number, onError: (error: unknown) => Uint8Array | string, onBlock?: (block: Uint8Array) => void) {
    this.#body = body;
    this.#splitter = createSseSplitter(maxEventBytes);
    this.#onError = onError;
    this.#onBlock = onBlock;
    body.on("data", (chunk: Buffer) => {
      let blocks: Uint8Array;
      try {
        blocks = this.#splitter.push(chunk);
      } catch (error) {
        if (error instanceof SseEventTooLargeError && error.before instanceof Uint8Array && error.before.length > 0) this.#hand(error.before);
        this.#fail(error);
        body.destroy();
        return;
      }
      if (blocks.length > 0) this.#hand(blocks);
    });
    body.once("end", () => {
      const rest = this.#splitter.end();
      if (rest.length > 0) this.#hand(rest);
      this.#end();
    });
    body.once("error", (error) => this.#fail(error));
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<Uint8Array>> {
    const block = this.#queue.shift();
    if (block !== undefined) {
      if (this.#queue.length === 0 && !this.#ended) this.#body.resume();
      return Promise.resolve({ value: block, done: false });
    }
    if (this.#ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => (this.#waiting = resolve));
  }

  /** The caller stopped reading (it went away): release the provider's connection. */
  return(): Promise<IteratorResult<Uint8Array>> {
    this.#end();
    this.#queue.length = 0;
    this.#body.destroy();
    return Promise.resolve({ value: undefined, done: true });
  }

  #hand(blocks: Uint8Array): void {
    this.#onBlock?.(blocks);
    this.#deliver(blocks);
  }

  #deliver(block: Uint8Array): void {
    const waiting = this.#waiting;
    if (waiting !== undefined) {
      this.#waiting = undefined;
      waiting({ value: block, done: false });
      return;
    }
    this.#queue.push(block);
    this.#body.pause();
  }

  /** Ends the stream with the error's bytes, unless it has ended already. */
  #fail(error: unknown): void {
    if (this.#ended) return;
    const bytes = this.#onError(error);
    this.#deliver(typeof bytes === "string" ? Buffer.from(bytes) : bytes);
    this.#end();
  }

  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.({ value: undefined, done: true });
  }
}
