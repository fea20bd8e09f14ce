import { describe, expect, it } from "vitest";
import { createSseParser, parseSse, SseEventTooLargeError, type SseEvent } from "../../src/providers/sse-parser.js";
import { createSseSplitter } from "../../src/providers/sse-splitter.js";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Feeds the chunks to one parser (bounded by `maxEventBytes`) and returns every event. */
function parse(chunks: Uint8Array[], maxEventBytes = Infinity) {
  const parser = createSseParser(maxEventBytes);
  const events: SseEvent[] = [];
  for (const chunk of chunks) events.push(...parser.push(chunk));
  events.push(...parser.end());
  return events;
}

/** Like toMatchObject, but `undefined` means the property is absent. */
function expectFields(actual: object, fields: Record<string, unknown>) {
  for (const [key, value] of Object.entries(fields)) expect((actual as Record<string, unknown>)[key], key).toEqual(value);
}

const parseText = (...texts: string[]) => parse(texts.map((text) => encoder.encode(text)));

/** Splits bytes into two chunks at every offset (plus one byte at a time). */
function splits(bytes: Uint8Array): Uint8Array[][] {
  const out: Uint8Array[][] = [];
  for (let at = 0; at <= bytes.length; at++) out.push([bytes.subarray(0, at), bytes.subarray(at)]);
  out.push(Array.from(bytes, (byte) => Uint8Array.of(byte)));
  return out;
}

const chunk = (content: string) =>
  JSON.stringify({ object: "chat.completion.chunk", choices: [{ index: 0, delta: { content } }] });

const openAiStream = (eol: string) =>
  [`data: ${chunk("Hel")}`, "", `data: ${chunk("lo wörld 👋")}`, "", "data: [DONE]", "", ""].join(eol);

const openAiBlocks = (eol: string) => [`data: ${chunk("Hel")}${eol}${eol}`, `data: ${chunk("lo wörld 👋")}${eol}${eol}`, `data: [DONE]${eol}${eol}`];

/** Streams as the blocks they are made of. */
const streams: [string, string[]][] = [
  ["LF", openAiBlocks("\n")],
  ["CRLF", openAiBlocks("\r\n")],
  ["CR", openAiBlocks("\r")],
  ["mixed", ["event: a\r\ndata: 1\rdata: é\n\r\n", ": c\n\n", "id: 3\r\ndata: 👋\r\r"]],
];

describe("createSseParser", () => {
  it.each([
    ["LF", "\n"],
    ["CRLF", "\r\n"],
    ["CR", "\r"],
  ])("reads an OpenAI stream with %s line ends", (_name, eol) => {
    const events = parseText(openAiStream(eol));
    expect(events.map((event) => event.data)).toEqual([chunk("Hel"), chunk("lo wörld 👋"), "[DONE]"]);
    expect(events.map((event) => event.event)).toEqual(["message", "message", "message"]);
    expect(openAiStream(eol)).toBe(openAiBlocks(eol).join(""));
  });

  it.each<[string, string, Record<string, unknown>[]]>([
    ["multi-line data", "data: a\ndata: b\ndata\ndata:\n\n", [{ data: "a\nb\n\n" }]],
    ["one leading space removed", "data:x\n\ndata:  y\n\n", [{ data: "x" }, { data: " y" }]],
    ["field without colon", "data\n\n", [{ data: "" }]],
    ["event type", "event: delta\ndata: 1\n\ndata: 2\n\n", [{ event: "delta", data: "1" }, { event: "message", data: "2" }]],
    ["id persists", "id: 7\ndata: a\n\ndata: b\n\nid\ndata: c\n\n", [{ id: "7" }, { id: "7" }, { id: undefined }]],
    ["id with NUL ignored", "id: 1\0\ndata: a\n\n", [{ id: undefined }]],
    ["retry", "retry: 1500\nretry: x\ndata: a\n\ndata: b\n\n", [{ retry: 1500 }, { retry: undefined }]],
    ["comments ignored", ": ping\n\n:x\ndata: a\n:y\n\ndata: b\n\n", [{ data: "a", comments: undefined }, { data: "b" }]],
    ["unknown fields ignored", "foo: bar\ndata: a\n\n", [{ data: "a" }]],
    ["block without data not dispatched", "event: x\n\ndata: a\n\n", [{ event: "message", data: "a" }]],
    ["leading BOM", "\uFEFFdata: a\n\n", [{ data: "a" }]],
    ["trailing event without blank line", "data: a\n\ndata: [DONE]\n", [{ data: "a" }, { data: "[DONE]" }]],
    ["trailing line without terminator", "data: [DONE]", [{ data: "[DONE]" }]],
    ["trailing comment only", "data: a\n\n: bye", [{ data: "a" }]],
  ])("%s", (_name, input, expected) => {
    const events = parseText(input);
    expect(events).toHaveLength(expected.length);
    expected.forEach((fields, index) => expectFields(events[index], fields));
  });

  it.each(streams)("gives the same events however a %s stream is split", (_name, blocks) => {
    const bytes = encoder.encode(blocks.join(""));
    const whole = parse([bytes]);
    expect(whole.length).toBeGreaterThan(1);
    for (const chunks of splits(bytes)) expect(parse(chunks)).toEqual(whole);
  });

  it("does not read a CRLF split between chunks as an empty line", () => {
    expect(parseText("data: a\r", "\ndata: b\r\n\r\n")).toMatchObject([{ data: "a\nb" }]);
  });

  it.each([
    ["a LF", "data: a\r\n\r", "\ndata: b\r\n\r\n"],
    ["no LF", "data: a\r\r", "data: b\n\n"],
  ])("dispatches an event whose blank line ends in a CR at a chunk's end at once, whether %s follows", (_name, first, next) => {
    const parser = createSseParser(Infinity);
    expect(parser.push(encoder.encode(first))).toMatchObject([{ data: "a" }]);
    expect(parser.push(encoder.encode(next))).toMatchObject([{ data: "b" }]);
  });

  it.each([
    ["é", 1],
    ["€", 1],
    ["€", 2],
    ["👋", 1],
    ["👋", 2],
    ["👋", 3],
  ])("decodes %s split after byte %i of the character", (character, at) => {
    const prefix = encoder.encode("data: x");
    const bytes = encoder.encode(`data: x${character}y\n\n`);
    const cut = prefix.length + at;
    expect(parse([bytes.subarray(0, cut), bytes.subarray(cut)])).toMatchObject([{ data: `x${character}y` }]);
  });

  it("returns no event until the blank line arrives", () => {
    const parser = createSseParser(Infinity);
    expect(parser.push(encoder.encode("data: a\n"))).toEqual([]);
    expect(parser.push(encoder.encode("\n"))).toMatchObject([{ data: "a" }]);
  });

  it("starts afresh after end()", () => {
    const parser = createSseParser(Infinity);
    parser.push(encoder.encode("id: 1\ndata: partial"));
    expect(parser.end()).toMatchObject([{ data: "partial", id: "1" }]);
    const [event] = parser.push(encoder.encode("data: b\n\n"));
    expectFields(event, { data: "b", id: undefined });
  });
});

describe("parseSse", () => {
  it("yields the events of an async stream of chunks, through [DONE]", async () => {
    const bytes = encoder.encode(openAiStream("\n"));
    async function* source() {
      for (let at = 0; at < bytes.length; at += 7) yield bytes.subarray(at, at + 7);
    }
    const data: string[] = [];
    for await (const event of parseSse(source(), 1024)) data.push(event.data);
    expect(data).toEqual([chunk("Hel"), chunk("lo wörld 👋"), "[DONE]"]);
  });
});

describe("createSseSplitter", () => {
  /** Feeds the chunks to one splitter; returns each non-empty piece it gave, decoded. */
  function split(chunks: Uint8Array[]): string[] {
    const splitter = createSseSplitter(Infinity);
    const pieces = [...chunks.map((chunk) => splitter.push(chunk)), splitter.end()];
    return pieces.filter((piece) => piece.length > 0).map((piece) => decoder.decode(piece));
  }

  it.each(streams)("cuts a %s stream exactly where its blocks end, however it is split", (_name, blocks) => {
    const text = blocks.join("");
    const bytes = encoder.encode(text);
    const eventEnds = new Set<number>();
    let offset = 0;
    for (const block of blocks) eventEnds.add((offset += encoder.encode(block).length));
    for (const chunks of splits(bytes)) {
      const pieces = split(chunks);
      expect(pieces.join("")).toBe(text);
      let end = 0;
      for (const piece of pieces) expect(eventEnds).toContain((end += encoder.encode(piece).length));
    }
    // Fed a byte at a time, it gives each event as soon as it is complete.
    expect(split(splits(bytes).at(-1)!).length).toBe(eventEnds.size);
  });

  it("holds a blank line's CR until it knows whether a LF follows", () => {
    const splitter = createSseSplitter(Infinity);
    expect(decoder.decode(splitter.push(encoder.encode("data: a\r\n\r")))).toBe("");
    expect(decoder.decode(splitter.push(encoder.encode("\ndata: b")))).toBe("data: a\r\n\r\n");
    expect(decoder.decode(splitter.end())).toBe("data: b");
  });

  it("gives a block of comments alone as a whole block, and drops a trailing one at the end", () => {
    const splitter = createSseSplitter(Infinity);
    expect(decoder.decode(splitter.push(encoder.encode(": keep-alive\n\ndata: x\n\n: bye")))).toBe(": keep-alive\n\ndata: x\n\n");
    expect(splitter.end()).toHaveLength(0);
  });

  it("keeps nothing of a half event until its blank line arrives", () => {
    const splitter = createSseSplitter(Infinity);
    expect(splitter.push(encoder.encode('data: {"a":'))).toHaveLength(0);
    expect(splitter.push(encoder.encode("1}\n"))).toHaveLength(0);
    expect(decoder.decode(splitter.push(encoder.encode("\n")))).toBe('data: {"a":1}\n\n');
  });
});

describe("the bound on one event", () => {
  /** What pushing each text in turn gave: the events, or the bound error with what came before it. */
  function bounded(maxEventBytes: number, ...texts: string[]) {
    const parser = createSseParser(maxEventBytes);
    const events: string[] = [];
    try {
      for (const text of texts) events.push(...parser.push(encoder.encode(text)).map((event) => event.data));
      events.push(...parser.end().map((event) => event.data));
      return { events };
    } catch (error) {
      if (!(error instanceof SseEventTooLargeError)) throw error;
      return { events, before: (error.before as SseEvent[]).map((event) => event.data), limit: error.limitBytes };
    }
  }

  // An event counts its bytes through the first byte of its blank line's terminator.
  it.each([
    ["LF", "data: x\n\ndata: y\n\n", 9],
    ["CRLF", "data: x\r\n\r\ndata: y\r\n\r\n", 10],
    ["CR", "data: x\r\rdata: y\r\r", 9],
  ])("lets an event of exactly the bound through, and not one byte more (%s)", (_name, text, size) => {
    expect(bounded(size, text)).toEqual({ events: ["x", "y"] });
    expect(bounded(size - 1, text)).toEqual({ events: [], before: [], limit: size - 1 });
  });

  it("counts the same wherever the stream is cut, a CRLF included", () => {
    const bytes = encoder.encode("data: x\r\n\r\ndata: y\r\n\r\n");
    for (const chunks of splits(bytes)) {
      expect(parse(chunks, 10).map((event) => event.data)).toEqual(["x", "y"]);
      expect(() => parse(chunks, 9)).toThrow(SseEventTooLargeError);
      const splitter = createSseSplitter(10);
      expect(Buffer.concat([...chunks.map((chunk) => splitter.push(chunk)), splitter.end()]).equals(bytes)).toBe(true);
      const tight = createSseSplitter(9);
      expect(() => chunks.forEach((chunk) => tight.push(chunk))).toThrow(SseEventTooLargeError);
    }
  });

  it("gives the events completed before the oversized one in the same chunk", () => {
    expect(bounded(20, `data: a\n\ndata: ${"b".repeat(30)}\n\ndata: c\n\n`)).toEqual({ events: [], before: ["a"], limit: 20 });
  });

  it("fails as soon as an unfinished event passes the bound, without waiting for its end", () => {
    expect(bounded(15, "data: a\n\n", "data: 0123456789")).toEqual({ events: ["a"], before: [], limit: 15 });
    expect(bounded(16, "data: a\n\n", "data: 0123456789")).toEqual({ events: ["a", "0123456789"] });
  });

  it("counts lines of comments without a blank line as one event", () => {
    expect(bounded(32, ": ping\n".repeat(5))).toMatchObject({ before: [] });
    expect(bounded(32, ": ping\n\n".repeat(5))).toEqual({ events: [] });
  });

  it("parseSse yields the events before, then throws, and stops reading its source", async () => {
    let pulled = 0;
    let closed = false;
    async function* source() {
      try {
        for (;;) {
          pulled++;
          yield encoder.encode(pulled === 1 ? "data: a\n\ndata: " : "x".repeat(10));
        }
      } finally {
        closed = true;
      }
    }
    const data: string[] = [];
    const outcome = await (async () => {
      for await (const event of parseSse(source(), 64)) data.push(event.data);
    })().catch((error: unknown) => error);
    expect(outcome).toBeInstanceOf(SseEventTooLargeError);
    expect(data).toEqual(["a"]);
    expect(pulled).toBe(7);
    expect(closed).toBe(true);
  });

  it("bounds the splitter the same way, giving the whole blocks before the oversized one", () => {
    const splitter = createSseSplitter(20);
    expect(decoder.decode(splitter.push(encoder.encode("data: a\n\n")))).toBe("data: a\n\n");
    let error: unknown;
    try {
      splitter.push(encoder.encode(`data: b\n\ndata: ${"c".repeat(30)}\n\n`));
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(SseEventTooLargeError);
    expect(decoder.decode((error as SseEventTooLargeError<Uint8Array>).before)).toBe("data: b\n\n");
    expect(() => createSseSplitter(8).push(encoder.encode("data: 0123"))).toThrow(SseEventTooLargeError);
    expect(createSseSplitter(9).push(encoder.encode("data: x\n\n"))).toHaveLength(9);
  });
});
