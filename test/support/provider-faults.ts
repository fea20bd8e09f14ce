/**
 * Faulty provider answers for the fake provider, built on its `handle` behaviour: bodies
 * generated piece by piece (so that a huge or endless answer is never held in the test's
 * memory), drips, bodies cut off by a close or a reset, compressed bombs.
 */
import type { ServerResponse } from "node:http";
import { gzipSync } from "node:zlib";
import { handle, type Behaviour, type RecordedRequest } from "./fake-provider.js";

type HeaderMap = Record<string, string | number>;
type Source = Iterable<Uint8Array> | AsyncIterable<Uint8Array>;

/** How a generated answer ends once its source is exhausted. */
export type Ending = "end" | "close" | "reset";

const written = new WeakMap<RecordedRequest, number>();

/** The body bytes a generated answer handed to the socket for this request. */
export function bytesWritten(request: RecordedRequest): number {
  return written.get(request) ?? 0;
}

/**
 * Answers with the pieces `source()` yields, each written once the previous one was flushed,
 * and stops as soon as the client goes away. `ending` "close" ends the connection without
 * finishing the body (a FIN mid-body), "reset" resets it.
 */
export function generated(status: number, headers: HeaderMap, source: () => Source, ending: Ending = "end"): Behaviour {
  return handle(async (request, res) => {
    res.writeHead(status, headers);
    res.flushHeaders();
    written.set(request, 0);
    for await (const piece of source()) {
      if (!(await write(res, piece))) return;
      written.set(request, bytesWritten(request) + piece.length);
    }
    await new Promise(setImmediate); // let what was written reach the client first
    if (ending === "end") res.end();
    else if (ending === "close") res.socket?.destroySoon();
    else res.socket?.resetAndDestroy();
  });
}

function write(res: ServerResponse, piece: Uint8Array): Promise<boolean> {
  if (res.destroyed) return Promise.resolve(false);
  return new Promise((resolve) => res.write(piece, (error) => resolve(!error && !res.destroyed)));
}

const PIECE = 64 * 1024;

/** `head`, then `fill` repeated up to `total` bytes in all, then `tail`. */
export function* padded(head: string, fill: number, total: number, tail = ""): Generator<Uint8Array> {
  const first = Buffer.from(head);
  const last = Buffer.from(tail);
  const block = Buffer.alloc(PIECE, fill);
  yield first;
  for (let left = total - first.length - last.length; left > 0; left -= PIECE) {
    yield left >= PIECE ? block : block.subarray(0, left);
  }
  if (last.length > 0) yield last;
}

/** A chat.completion of `total` bytes, valid JSON, its content one long run of "a". */
export const hugeCompletion = (total: number) =>
  padded('{"id":"chatcmpl-huge","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"', 0x61, total, '"},"finish_reason":"stop"}]}');

/** One SSE event of `total` bytes that never ends its line. */
export const endlessLine = (total: number) => padded('data: {"choices":[{"delta":{"content":"', 0x61, total);

/** `bytes`, one byte every `intervalMs`. */
export async function* drip(bytes: Uint8Array, intervalMs: number): AsyncGenerator<Uint8Array> {
  for (const byte of bytes) {
    yield Uint8Array.of(byte);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * A gzip body that inflates to `inflatedBytes` of zeros: gzip members of 16 MiB each,
 * concatenated (a valid gzip stream), about a thousandth of that on the wire.
 */
export function* gzipBomb(inflatedBytes: number): Generator<Uint8Array> {
  const member = gzipSync(Buffer.alloc(16 * 1024 * 1024));
  for (let left = inflatedBytes; left > 0; left -= 16 * 1024 * 1024) yield member;
}

/** Tiny SSE events, many to a write, for `durationMs` (or until the client goes away). */
export async function* tinyEvents(durationMs: number): AsyncGenerator<Uint8Array> {
  const batch = Buffer.from('data: {"choices":[{"delta":{"content":"a"}}]}\n\n'.repeat(64));
  const until = Date.now() + durationMs;
  while (Date.now() < until) {
    yield batch;
    await new Promise(setImmediate);
  }
}
