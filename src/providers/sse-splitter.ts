import { createSseParser } from "./sse-parser.js";

/**
 * Splits a stream of SSE bytes into whole blocks (up to and including each blank line) without
 * decoding them: what a relay needs to forward events byte for byte and never half of one.
 */
export interface SseSplitter {
  /** Feeds the next chunk; returns the bytes of the blocks it completed (empty when none). */
  push(chunk: Uint8Array): Uint8Array;
  /** Ends the stream: the trailing bytes when they make an event (see SseParser.end), else empty. */
  end(): Uint8Array;
}

const LF = 0x0a;
const CR = 0x0d;
const empty = new Uint8Array(0);

export function createSseSplitter(): SseSplitter {
  // Bytes after the last boundary, carried over from earlier chunks (copies).
  let carried: Uint8Array[] = [];
  let carriedLength = 0;
  let atLineStart = true;
  // The previous byte was a CR: a LF now completes its CRLF terminator.
  let afterCR = false;
  // That CR ended a blank line: the boundary falls after its LF if one follows, else before this byte.
  let blankCR = false;

  function take(chunk: Uint8Array, boundary: number): Uint8Array {
    const head = chunk.subarray(0, boundary);
    const out = carriedLength === 0 ? head : Buffer.concat([...carried, head], carriedLength + boundary);
    carried = [];
    carriedLength = 0;
    return out;
  }

  function push(chunk: Uint8Array): Uint8Array {
    let boundary = -1;
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i];
      if (afterCR) {
        afterCR = false;
        if (blankCR) {
          blankCR = false;
          boundary = byte === LF ? i + 1 : i;
        }
        if (byte === LF) continue;
      }
      if (byte === LF || byte === CR) {
        if (atLineStart) {
          if (byte === LF) boundary = i + 1;
          else blankCR = true;
        }
        atLineStart = true;
        afterCR = byte === CR;
      } else {
        atLineStart = false;
      }
    }
    if (boundary === -1) {
      if (chunk.length > 0) {
        carried.push(chunk.slice());
        carriedLength += chunk.length;
      }
      return empty;
    }
    const out = take(chunk, boundary);
    if (boundary < chunk.length) {
      carried.push(chunk.slice(boundary));
      carriedLength = chunk.length - boundary;
    }
    return out;
  }

  function end(): Uint8Array {
    const rest = carried.length === 1 ? carried[0] : Buffer.concat(carried, carriedLength);
    reset();
    if (rest.length === 0) return empty;
    // Rare: the stream ended without a blank line. Relay it only if it makes an event.
    const parser = createSseParser();
    const events = [...parser.push(rest), ...parser.end()];
    return events.length > 0 ? rest : empty;
  }

  function reset(): void {
    carried = [];
    carriedLength = 0;
    atLineStart = true;
    afterCR = blankCR = false;
  }

  return { push, end };
}
