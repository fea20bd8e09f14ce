/**
 * Properties of the SSE parser and splitter, checked by fast-check: however a stream is cut
 * into chunks, the same events and the same blocks come out; random bytes raise nothing but
 * the bound error, and raise it in the very chunk where a reference model says the event
 * being read passed the bound, so that neither ever holds more than the bound.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createSseParser, SseEventTooLargeError, type SseEvent } from "../../src/providers/sse-parser.js";
import { createSseSplitter } from "../../src/providers/sse-splitter.js";

const encoder = new TextEncoder();
const LF = 0x0a;
const CR = 0x0d;

/** A field value: any text without CR or LF (and without NUL, for ids). */
const value = (options: { noNul?: boolean } = {}) =>
  fc.string({ unit: "binary", maxLength: 12 }).map((text) => text.replace(options.noNul ? /[\r\n\0]/g : /[\r\n]/g, ""));

interface BlockSpec {
  data: string[];
  event?: string;
  id?: string;
  retry?: number;
  comments: string[];
}

/** A block with data (an event) or without (comments only). */
const blockSpec: fc.Arbitrary<BlockSpec> = fc.record(
  {
    data: fc.array(value(), { maxLength: 3 }),
    event: value(),
    id: value({ noNul: true }),
    retry: fc.nat({ max: 99_999 }),
    comments: fc.array(value(), { maxLength: 2 }),
  },
  { requiredKeys: ["data", "comments"] },
);

const eol = fc.constantFrom("\n", "\r", "\r\n");

/** A stream of blocks, each line with its own line ending, and the blocks as text. */
const stream = fc.array(fc.tuple(blockSpec, fc.array(eol, { minLength: 8, maxLength: 8 })), { minLength: 1, maxLength: 6 }).map((specs) => {
  const blocks: string[] = [];
  let previousEnd = "";
  for (const [spec, ends] of specs) {
    const lines = [
      ...spec.comments.map((comment) => `:${comment}`),
      ...(spec.data.length > 0 && spec.event !== undefined ? [`event: ${spec.event}`] : []),
      ...(spec.data.length > 0 && spec.id !== undefined ? [`id: ${spec.id}`] : []),
      ...(spec.data.length > 0 && spec.retry !== undefined ? [`retry: ${spec.retry}`] : []),
      ...spec.data.map((line) => `data: ${line}`),
      "",
    ];
    let text = "";
    lines.forEach((line, index) => {
      // A CR then a blank line ended by LF alone would read as one CRLF: end that blank line otherwise.
      const end = line === "" && previousEnd === "\r" && ends[index % ends.length] === "\n" ? "\r\n" : ends[index % ends.length];
      text += line + end;
      previousEnd = end;
    });
    blocks.push(text);
  }
  return { specs: specs.map(([spec]) => spec), blocks };
});

/** The events the EventSource grammar dispatches for these blocks. */
function expectedEvents(specs: BlockSpec[]): SseEvent[] {
  const events: SseEvent[] = [];
  let lastEventId = "";
  for (const spec of specs) {
    if (spec.data.length === 0) continue;
    if (spec.id !== undefined) lastEventId = spec.id;
    const event: SseEvent = { event: spec.event || "message", data: spec.data.join("\n") };
    if (lastEventId !== "") event.id = lastEventId;
    if (spec.retry !== undefined) event.retry = spec.retry;
    events.push(event);
  }
  return events;
}

/** Cuts bytes at these positions (taken modulo its length + 1). */
function cut(bytes: Uint8Array, positions: number[]): Uint8Array[] {
  const at = [...new Set(positions.map((position) => position % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const end of [...at, bytes.length]) {
    chunks.push(bytes.subarray(start, end));
    start = end;
  }
  return chunks;
}

/** Where to cut a stream: often not at all or in few places (so that one chunk holds several events), else anywhere. */
const positions = fc.oneof(fc.constant<number[]>([]), fc.array(fc.nat(), { maxLength: 2 }), fc.array(fc.nat(), { maxLength: 12 }));

function parseAll(chunks: Uint8Array[], maxEventBytes = Infinity): SseEvent[] {
  const parser = createSseParser(maxEventBytes);
  return [...chunks.flatMap((chunk) => parser.push(chunk)), ...parser.end()];
}

/**
 * The reference model of the bound: the index of the first byte at which the event being read
 * counts more than `limit` bytes (through its blank line's first terminator byte), and the end
 * of the last whole block before it; undefined when the stream never passes the bound.
 */
function violation(bytes: Uint8Array, limit: number): { at: number; blocksEnd: number } | undefined {
  let start = 0;
  let blocksEnd = 0;
  let atLineStart = true;
  let afterCR = false;
  let blankCR = false;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i];
    if (afterCR) {
      afterCR = false;
      if (blankCR) {
        blankCR = false;
        blocksEnd = start = byte === LF ? i + 1 : i;
      }
      if (byte === LF) {
        if (i + 1 - start > limit) return { at: i, blocksEnd };
        continue;
      }
    }
    if (i + 1 - start > limit) return { at: i, blocksEnd };
    if (byte === LF || byte === CR) {
      if (atLineStart) {
        start = i + 1;
        if (byte === LF) blocksEnd = i + 1;
        else blankCR = true;
      }
      atLineStart = true;
      afterCR = byte === CR;
    } else {
      atLineStart = false;
    }
  }
  return undefined;
}

/** Bytes that look like SSE here and there: tokens in any order, CRLF cut in every way, invalid UTF-8 included. */
const tokens = ["data: ", "data:", "event: x", ":", "id: 1", "retry: 5", "\r", "\n", "\r\n", "a", "é", "👋", "\uFEFF"].map((token) => encoder.encode(token));
const tokenSoup = fc
  .array(fc.oneof(fc.constantFrom(...tokens), fc.uint8Array({ maxLength: 3 }), fc.constant(Uint8Array.of(0xff, 0xfe))), { maxLength: 40 })
  .map((parts) => new Uint8Array(Buffer.concat(parts)));
/** Lines of SSE fields, blank lines, long runs and junk, each ended by LF, CR, CRLF or nothing. */
const line = fc.oneof(
  fc.constantFrom("data: x", "data: ", ": c", "event: e", "", "", "aaaaaaaaaaaaaaaa", "data: é👋").map((text) => encoder.encode(text)),
  fc.uint8Array({ maxLength: 6 }).map((bytes) => bytes.map((byte) => (byte === CR || byte === LF ? 0x61 : byte))),
);
const lineSoup = fc
  .array(fc.tuple(line, fc.constantFrom("\n", "\r", "\r\n", "")), { maxLength: 24 })
  .map((lines) => new Uint8Array(Buffer.concat(lines.flatMap(([text, end]) => [text, encoder.encode(end)]))));
const noisyBytes = fc.oneof(tokenSoup, lineSoup);
const limit = fc.oneof(fc.integer({ min: 1, max: 24 }), fc.integer({ min: 1, max: 64 }), fc.constant(Infinity));

/** Pushes each chunk; returns what came out, and the index of the chunk that threw the bound error. */
function feed<T>(push: (chunk: Uint8Array) => T, chunks: Uint8Array[]): { outputs: T[]; threwAt?: number; before?: unknown } {
  const outputs: T[] = [];
  for (const [index, chunk] of chunks.entries()) {
    try {
      outputs.push(push(chunk));
    } catch (error) {
      if (!(error instanceof SseEventTooLargeError)) throw error;
      return { outputs, threwAt: index, before: error.before };
    }
  }
  return { outputs };
}

/** The index of the chunk holding byte `at`. */
function chunkOf(chunks: Uint8Array[], at: number): number {
  let end = 0;
  return chunks.findIndex((chunk) => (end += chunk.length) > at);
}

describe("createSseParser, for any valid stream", () => {
  it("gives the events the grammar defines, however the stream is cut", () => {
    fc.assert(
      fc.property(stream, positions, ({ specs, blocks }, at) => {
        const bytes = encoder.encode(blocks.join(""));
        expect(parseAll(cut(bytes, at))).toEqual(expectedEvents(specs));
      }),
      { numRuns: 300 },
    );
  });

  it("gives the same events cut in two at every offset, UTF-8 characters and CRLFs included", () => {
    fc.assert(
      fc.property(stream, ({ specs, blocks }) => {
        const bytes = encoder.encode(blocks.join(""));
        const expected = expectedEvents(specs);
        for (let at = 0; at <= bytes.length; at++) expect(parseAll([bytes.subarray(0, at), bytes.subarray(at)])).toEqual(expected);
      }),
      { numRuns: 50 },
    );
  });
});

describe("createSseSplitter, for any valid stream", () => {
  it("cuts only where blocks end, however the stream is cut, and byte by byte gives each block alone", () => {
    fc.assert(
      fc.property(stream, positions, ({ specs, blocks }, at) => {
        const bytes = encoder.encode(blocks.join(""));
        // A last block whose blank line ends in a lone CR waits for the end; relayed only if it makes an event.
        const last = blocks[blocks.length - 1];
        const dropsLast = /\r$/.test(last) && specs[specs.length - 1].data.length === 0;
        const relayed = dropsLast ? blocks.slice(0, -1) : blocks;
        const ends = new Set<number>();
        let offset = 0;
        for (const block of relayed) ends.add((offset += encoder.encode(block).length));
        const splitter = createSseSplitter(Infinity);
        const pieces = [...cut(bytes, at).map((chunk) => splitter.push(chunk)), splitter.end()].filter((piece) => piece.length > 0);
        expect(Buffer.concat(pieces).equals(Buffer.from(relayed.join("")))).toBe(true);
        let end = 0;
        for (const piece of pieces) expect(ends).toContain((end += piece.length));
        const bytewise = createSseSplitter(Infinity);
        const single = [...Array.from(bytes, (byte) => bytewise.push(Uint8Array.of(byte))), bytewise.end()].filter((piece) => piece.length > 0);
        expect(single.map((piece) => Buffer.from(piece).toString("utf8"))).toEqual(relayed);
      }),
      { numRuns: 300 },
    );
  });

  it("relays what the parser reads as the same events", () => {
    fc.assert(
      fc.property(stream, positions, ({ specs, blocks }, at) => {
        const splitter = createSseSplitter(Infinity);
        const chunks = cut(encoder.encode(blocks.join("")), at);
        const pieces = [...chunks.map((chunk) => splitter.push(chunk)), splitter.end()];
        expect(parseAll(pieces)).toEqual(expectedEvents(specs));
      }),
      { numRuns: 200 },
    );
  });
});

describe("random bytes, under any bound", () => {
  it("the parser throws only the bound error, in the chunk where the event passed it, after the events before it", () => {
    fc.assert(
      fc.property(noisyBytes, positions, limit, (bytes, at, maxEventBytes) => {
        const chunks = cut(bytes, at);
        const parser = createSseParser(maxEventBytes);
        const { outputs, threwAt, before } = feed((chunk) => parser.push(chunk), chunks);
        const model = violation(bytes, maxEventBytes);
        expect(threwAt).toBe(model === undefined ? undefined : chunkOf(chunks, model.at));
        // Before the error: exactly the events of the whole blocks before the oversized one.
        const events = [...outputs.flat(), ...(threwAt === undefined ? parser.end() : (before as SseEvent[]))];
        expect(events).toEqual(parseAll([bytes.subarray(0, model?.blocksEnd ?? bytes.length)]));
      }),
      { numRuns: 1000 },
    );
  });

  it("the splitter throws only the bound error, in the chunk where the block passed it, after every whole block before it", () => {
    fc.assert(
      fc.property(noisyBytes, positions, limit, (bytes, at, maxEventBytes) => {
        const chunks = cut(bytes, at);
        const splitter = createSseSplitter(maxEventBytes);
        const { outputs, threwAt, before } = feed((chunk) => splitter.push(chunk), chunks);
        const model = violation(bytes, maxEventBytes);
        if (model === undefined) {
          expect(threwAt).toBeUndefined();
          const relayed = Buffer.concat([...outputs, splitter.end()]);
          expect(Buffer.from(bytes.subarray(0, relayed.length)).equals(relayed)).toBe(true);
          return;
        }
        expect(threwAt).toBe(chunkOf(chunks, model.at));
        const relayed = Buffer.concat([...outputs, before as Uint8Array]);
        expect(relayed.equals(Buffer.from(bytes.subarray(0, model.blocksEnd)))).toBe(true);
      }),
      { numRuns: 1000 },
    );
  });
});
