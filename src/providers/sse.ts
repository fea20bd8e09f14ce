/**
 * An incremental Server-Sent Events parser (WHATWG EventSource grammar), fed raw chunks as
 * they arrive from the socket. Lines are split on bytes (CR and LF never occur inside a
 * UTF-8 multi-byte sequence) and only whole lines are decoded, so a character split between
 * chunks decodes correctly.
 */

/** One dispatched event. */
export interface SseEvent {
  /** The `event:` field; "message" when the block has none. */
  event: string;
  /** The `data:` lines joined by "\n". */
  data: string;
  /** The last event ID in effect; it persists across events, as in EventSource. Absent while empty. */
  id?: string;
  /** The last valid `retry:` value (milliseconds) seen since the previous event. */
  retry?: number;
  /** Comment lines (text after ":", one leading space removed) seen since the previous event. */
  comments?: string[];
  /**
   * The bytes received since the previous event through this event's terminating blank line,
   * so that concatenating every `raw` reproduces the stream. Usually that is exactly the event;
   * it also holds any preceding blocks that dispatched nothing (comments, keep-alives). It may
   * be a view into the pushed chunk: copy it to keep it beyond the chunk's lifetime.
   */
  raw: Uint8Array;
}

export interface SseParser {
  /**
   * Feeds the next chunk; returns the events it completed, in order. An event whose blank line
   * ends with a CR as the chunk's last byte is returned by the next push() (or end()), once it
   * is known whether a LF follows, so that its raw holds its whole terminator.
   */
  push(chunk: Uint8Array): SseEvent[];
  /**
   * Ends the stream and resets the parser. Unlike EventSource, which discards an event not
   * followed by a blank line, a trailing event with data (its last line unterminated or not)
   * is dispatched: a provider that ends with `data: [DONE]` and no blank line is still read.
   * Trailing bytes that make no event are dropped.
   */
  end(): SseEvent[];
}

const LF = 0x0a;
const CR = 0x0d;

export function createSseParser(): SseParser {
  const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
  // Bytes of the current event carried over from earlier chunks (copies), and their total length.
  let eventParts: Uint8Array[] = [];
  let eventLength = 0;
  // Bytes of the current unterminated line: views into the last entries of eventParts.
  let lineParts: Uint8Array[] = [];
  // The previous chunk ended in CR: a LF at the start of the next one ends no line.
  let skipLF = false;
  // An event dispatched on that CR, waiting for the LF that may belong to its raw.
  let held: SseEvent | undefined;
  let firstLine = true;

  let data = "";
  let hasData = false;
  let eventType = "";
  let lastEventId = "";
  let retry: number | undefined;
  let comments: string[] | undefined;

  /** Applies one line; returns true when it is a blank line closing an event with data. */
  function processLine(bytes: Uint8Array): boolean {
    let line = bytes.length === 0 ? "" : decoder.decode(bytes);
    if (firstLine) {
      firstLine = false;
      if (line.charCodeAt(0) === 0xfeff) line = line.slice(1);
    }
    if (line === "") {
      if (hasData) return true;
      data = ""; // a block without data dispatches nothing but still ends its `event:`
      eventType = "";
      return false;
    }
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = "";
    if (colon !== -1) {
      const start = line.charCodeAt(colon + 1) === 0x20 ? colon + 2 : colon + 1;
      value = line.slice(start);
    }
    switch (field) {
      case "":
        (comments ??= []).push(value);
        break;
      case "data":
        data = hasData ? data + "\n" + value : value;
        hasData = true;
        break;
      case "event":
        eventType = value;
        break;
      case "id":
        if (!value.includes("\0")) lastEventId = value;
        break;
      case "retry":
        if (/^[0-9]+$/.test(value)) retry = Number(value);
        break;
      // Other fields are ignored, as the grammar requires.
    }
    return false;
  }

  function takeEvent(raw: Uint8Array): SseEvent {
    const event: SseEvent = { event: eventType || "message", data, raw };
    if (lastEventId !== "") event.id = lastEventId;
    if (retry !== undefined) event.retry = retry;
    if (comments !== undefined) event.comments = comments;
    data = "";
    hasData = false;
    eventType = "";
    retry = undefined;
    comments = undefined;
    eventParts = [];
    eventLength = 0;
    return event;
  }

  function push(chunk: Uint8Array): SseEvent[] {
    let events: SseEvent[] | undefined;
    let pos = 0;
    let eventStart = 0;
    if (skipLF && chunk.length > 0) {
      skipLF = false;
      if (chunk[0] === LF) pos = 1;
      if (held !== undefined) {
        if (pos === 1) held.raw = concat([held.raw, chunk.subarray(0, 1)], held.raw.length + 1);
        events = [held];
        held = undefined;
        eventStart = pos;
      }
    }
    let lineStart = pos;
    let nextCR = -2; // -2: not searched yet; -1: none left in this chunk
    let nextLF = -2;
    while (pos < chunk.length) {
      if (nextCR !== -1 && nextCR < pos) nextCR = chunk.indexOf(CR, pos);
      if (nextLF !== -1 && nextLF < pos) nextLF = chunk.indexOf(LF, pos);
      if (nextCR === -1 && nextLF === -1) break;
      const end = nextCR === -1 ? nextLF : nextLF === -1 ? nextCR : Math.min(nextCR, nextLF);
      let next = end + 1;
      if (end === nextCR) {
        if (next === chunk.length) skipLF = true;
        else if (chunk[next] === LF) next++;
      }
      let line = chunk.subarray(lineStart, end);
      if (lineParts.length > 0) {
        line = concat([...lineParts, line], end - lineStart + lengthOf(lineParts));
        lineParts = [];
      }
      if (processLine(line)) {
        const tail = chunk.subarray(eventStart, next);
        const raw = eventParts.length === 0 ? tail : concat([...eventParts, tail], eventLength + tail.length);
        eventStart = next;
        if (skipLF) held = takeEvent(raw.slice());
        else (events ??= []).push(takeEvent(raw));
      }
      pos = lineStart = next;
    }
    if (eventStart < chunk.length) {
      const rest = chunk.slice(eventStart);
      eventParts.push(rest);
      eventLength += rest.length;
      if (lineStart < chunk.length) lineParts.push(rest.subarray(lineStart - eventStart));
    }
    return events ?? [];
  }

  function end(): SseEvent[] {
    const events: SseEvent[] = [];
    if (held !== undefined) events.push(held);
    if (lineParts.length > 0) processLine(concat(lineParts, lengthOf(lineParts)));
    if (hasData) events.push(takeEvent(concat(eventParts, eventLength)));
    held = undefined;
    eventParts = [];
    eventLength = 0;
    lineParts = [];
    skipLF = false;
    firstLine = true;
    data = "";
    hasData = false;
    eventType = "";
    lastEventId = "";
    retry = undefined;
    comments = undefined;
    return events;
  }

  return { push, end };
}

/** Parses a whole stream of chunks (a fetch or undici body, a socket) into events. */
export async function* parseSse(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<SseEvent> {
  const parser = createSseParser();
  for await (const chunk of chunks) yield* parser.push(chunk);
  yield* parser.end();
}

function lengthOf(parts: Uint8Array[]): number {
  let length = 0;
  for (const part of parts) length += part.length;
  return length;
}

function concat(parts: Uint8Array[], length: number): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

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
    const out = carriedLength === 0 ? head : concat([...carried, head], carriedLength + boundary);
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
    const rest = concat(carried, carriedLength);
    carried = [];
    carriedLength = 0;
    atLineStart = true;
    afterCR = blankCR = false;
    if (rest.length === 0) return empty;
    // Rare: the stream ended without a blank line. Relay it only if it makes an event.
    const parser = createSseParser();
    const events = [...parser.push(rest), ...parser.end()];
    return events.length > 0 ? rest : empty;
  }

  return { push, end };
}
