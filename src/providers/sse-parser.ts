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
  /** Feeds the next chunk; returns the events it completed, in order. */
  push(chunk: Uint8Array): SseEvent[];
  /**
   * Ends the stream and resets the parser. Unlike EventSource, which discards an event not
   * followed by a blank line, a trailing event with data (its last line unterminated or not)
   * is dispatched: a provider that ends with `data: [DONE]` and no blank line is still read.
   */
  end(): SseEvent[];
}

const LF = 0x0a;
const CR = 0x0d;

export function createSseParser(): SseParser {
  const decoder = new TextDecoder("utf-8", { ignoreBOM: true });
  // The current unterminated line (copies), and its length.
  let lineParts: Uint8Array[] = [];
  let lineLength = 0;
  // The previous chunk ended in CR: a LF at the start of the next one ends no line.
  let skipLF = false;
  let firstLine = true;

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

  function push(chunk: Uint8Array): SseEvent[] {
    let events: SseEvent[] | undefined;
    let pos = 0;
    if (skipLF && chunk.length > 0) {
      skipLF = false;
      if (chunk[0] === LF) pos = 1;
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
      const event = processLine(line);
      if (event !== undefined) (events ??= []).push(event);
      pos = lineStart = next;
    }
    if (lineStart < chunk.length) {
      lineParts.push(chunk.slice(lineStart));
      lineLength += chunk.length - lineStart;
    }
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
    skipLF = false;
    firstLine = true;
    data = "";
    hasData = false;
    eventType = "";
    lastEventId = "";
    retry = undefined;
  }

  return { push, end };
}

/** Parses a whole stream of chunks (a fetch or undici body, a socket) into events. */
export async function* parseSse(chunks: AsyncIterable<Uint8Array>): AsyncGenerator<SseEvent> {
  const parser = createSseParser();
  for await (const chunk of chunks) yield* parser.push(chunk);
  yield* parser.end();
}
