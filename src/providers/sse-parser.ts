/**
 * An incremental Server-Sent Events parser (WHATWG EventSource grammar), fed raw chunks as
 * they arrive from the socket. Lines are split on bytes (CR and LF never occur inside a
 * UTF-8 multi-byte sequence) and only whole lines are decoded, so a character split between
 * chunks decodes correctly; invalid UTF-8 becomes U+FFFD, as in EventSource.
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
}

export interface SseParser {
  /**
   * Feeds the next chunk; returns the events it completed, in order. Throws
   * SseEventTooLargeError once the event being read passes the bound; the parser is then reset.
   */
  push(chunk: Uint8Array): SseEvent[];
  /**
   * Ends the stream and resets the parser. Unlike EventSource, which discards an event not
   * followed by a blank line, a trailing event with data (its last line unterminated or not)
   * is dispatched: a provider that ends with `data: [DONE]` and no blank line is still read.
   */
  end(): SseEvent[];
}

/**
 * One event passed the bound: more than `limitBytes` bytes up to its blank line (see
 * createSseParser). `before` holds what the same push completed ahead of it, so that
 * what is delivered before the error does not depend on how the stream was cut into chunks.
 */
export class SseEventTooLargeError<Before = unknown> extends Error {
  override name = "SseEventTooLargeError";

  constructor(
    readonly limitBytes: number,
    readonly before: Before,
  ) {
    super(`an SSE event larger than ${limitBytes} bytes`);
  }
}

const LF = 0x0a;
const CR = 0x0d;

/**
 * A parser that holds at most `maxEventBytes` of one event. An event's size is counted from
 * the end of the previous block through the first terminator byte of its own blank line (the
 * LF of a closing CRLF, which may come in the next chunk, is not counted).
 */
export function createSseParser(maxEventBytes: number): SseParser {
  const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
  // The current unterminated line (copies), and its length.
  let lineParts: Uint8Array[] = [];
  let lineLength = 0;
  // The previous chunk ended in CR: a LF at the start of the next one ends no line.
  let skipLF = false;
  // That CR ended a blank line: the LF belongs to the event it ended.
  let blankCR = false;
  let firstLine = true;
  // Stream offsets: of the next chunk's first byte, and of the current event's first byte.
  let offset = 0;
  let eventStart = 0;

  let data = "";
  let hasData = false;
  let eventType = "";
  let lastEventId = "";
  let retry: number | undefined;

  /** Applies one line; returns the event when it is a blank line closing one with data. */
  function processLine(bytes: Uint8Array): SseEvent | undefined {
    let line = bytes.length === 0 ? "" : decoder.decode(bytes);
    if (firstLine) {
      firstLine = false;
      if (line.charCodeAt(0) === 0xfeff) line = line.slice(1);
    }
    if (line === "") {
      if (hasData) return takeEvent();
      data = ""; // a block without data dispatches nothing but still ends its `event:`
      eventType = "";
      return undefined;
    }
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = "";
    if (colon !== -1) {
      const start = line.charCodeAt(colon + 1) === 0x20 ? colon + 2 : colon + 1;
      value = line.slice(start);
    }
    switch (field) {
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
      // Comments ("" field) and other fields are ignored, as the grammar requires.
    }
    return undefined;
  }

  function takeEvent(): SseEvent {
    const event: SseEvent = { event: eventType || "message", data };
    if (lastEventId !== "") event.id = lastEventId;
    if (retry !== undefined) event.retry = retry;
    data = "";
    hasData = false;
    eventType = "";
    retry = undefined;
    return event;
  }

  function fail(before: SseEvent[] | undefined): never {
    reset();
    throw new SseEventTooLargeError(maxEventBytes, before ?? []);
  }

  function push(chunk: Uint8Array): SseEvent[] {
    let events: SseEvent[] | undefined;
    let pos = 0;
    if (skipLF && chunk.length > 0) {
      skipLF = false;
      if (chunk[0] === LF) {
        pos = 1;
        if (blankCR) eventStart++;
      }
      blankCR = false;
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
      if (lineLength > 0) {
        line = Buffer.concat([...lineParts, line], lineLength + line.length);
        lineParts = [];
        lineLength = 0;
      }
      if (line.length === 0) {
        // A blank line: the event is counted through its first terminator byte.
        if (offset + end + 1 - eventStart > maxEventBytes) fail(events);
        eventStart = offset + next;
      }
      blankCR = skipLF && line.length === 0;
      const event = processLine(line);
      if (event !== undefined) (events ??= []).push(event);
      pos = lineStart = next;
    }
    if (lineStart < chunk.length) {
      lineParts.push(chunk.slice(lineStart));
      lineLength += chunk.length - lineStart;
    }
    offset += chunk.length;
    if (offset - eventStart > maxEventBytes) fail(events);
    return events ?? [];
  }

  function end(): SseEvent[] {
    const events: SseEvent[] = [];
    if (lineLength > 0) processLine(lineParts.length === 1 ? lineParts[0] : Buffer.concat(lineParts, lineLength));
    if (hasData) events.push(takeEvent());
    reset();
    return events;
  }

  function reset(): void {
    lineParts = [];
    lineLength = 0;
    skipLF = blankCR = false;
    firstLine = true;
    offset = eventStart = 0;
    data = "";
    hasData = false;
    eventType = "";
    lastEventId = "";
    retry = undefined;
  }

  return { push, end };
}

/**
 * Parses a whole stream of chunks (an undici body, a socket) into events, holding at most
 * `maxEventBytes` of one. Past it, it yields the events completed before and throws
 * SseEventTooLargeError; leaving the loop destroys the source, so nothing more is read.
 */
export async function* parseSse(chunks: AsyncIterable<Uint8Array>, maxEventBytes: number): AsyncGenerator<SseEvent> {
  const parser = createSseParser(maxEventBytes);
  for await (const chunk of chunks) {
    let events: SseEvent[];
    try {
      events = parser.push(chunk);
    } catch (error) {
      if (error instanceof SseEventTooLargeError) yield* (error as SseEventTooLargeError<SseEvent[]>).before;
      throw error;
    }
    yield* events;
  }
  yield* parser.end();
}
