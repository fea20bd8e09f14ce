import { createSseParser, SseEventTooLargeError } from "./sse-parser.js";

/**
 * Splits a stream of SSE bytes into whole blocks (up to and including each blank line) without
 * decoding them: what a relay needs to forward events byte for byte and never half of one.
 */
export interface SseSplitter {
  /**
   * Feeds the next chunk; returns the bytes of the blocks it completed (empty when none).
   * Throws SseEventTooLargeError, with the whole blocks before it as `before`, once a block
   * passes the bound (counted as the parser counts an event); the splitter is then reset.
   */
  push(chunk: Uint8Array): Uint8Array;
  /** Ends the stream: the trailing bytes when they make an event (see SseParser.end), else empty. */
  end(): Uint8Array;
}

const LF = 0x0a;
const CR = 0x0d;
const empty = new Uint8Array(0);

/** A splitter that holds at most `maxEventBytes` of the block being read. */
export function createSseSplitter(maxEventBytes: number): SseSplitter {
  // Bytes after the last boundary, carried over from earlier chunks (copies).
  let carried: Uint8Array[] = [];
  let carriedLength = 0;
  let atLineStart = true;
  // The previous byte was a CR: a LF now completes its CRLF terminator.
  let afterCR = false;
  // That CR ended a blank line: the boundary falls after its LF if one follows, else before this byte.
  let blankCR = false;
  // Bytes of the current block counted for the bound so far.
  let held = 0;

  function take(chunk: Uint8Array, boundary: number): Uint8Array {
    const head = chunk.subarray(0, boundary);
    const out = carriedLength === 0 ? head : Buffer.concat([...carried, head], carriedLength + boundary);
    carried = [];
    carriedLength = 0;
    return out;
  }

  function fail(chunk: Uint8Array, boundary: number): never {
    const before = boundary === -1 ? empty : take(chunk, boundary);
    reset();
    throw new SseEventTooLargeError(maxEventBytes, before);
  }

  function push(chunk: Uint8Array): Uint8Array {
    let boundary = -1;
    // Where the current block starts in this chunk (negative: in an earlier one), for the bound.
    let start = -held;
    let over = false;
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i];
      if (afterCR) {
        afterCR = false;
        if (blankCR) {
          blankCR = false;
          boundary = byte === LF ? i + 1 : i;
          start = boundary;
        }
        if (byte === LF) continue;
      }
      if (byte === LF || byte === CR) {
        if (atLineStart) {
          // A blank line: the block is counted through this first terminator byte.
          if (i + 1 - start > maxEventBytes) {
            over = true;
            break;
          }
          start = i + 1;
          if (byte === LF) boundary = i + 1;
          else blankCR = true;
        }
        atLineStart = true;
        afterCR = byte === CR;
      } else {
        atLineStart = false;
      }
    }
    if (over || chunk.length - start > maxEventBytes) fail(chunk, boundary);
    held = chunk.length - start;
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
    const parser = createSseParser(Infinity);
    const events = [...parser.push(rest), ...parser.end()];
    return events.length > 0 ? rest : empty;
  }

  function reset(): void {
    carried = [];
    carriedLength = 0;
    atLineStart = true;
    afterCR = blankCR = false;
    held = 0;
  }

  return { push, end };
}
