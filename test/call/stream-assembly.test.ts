import type { JsonObject } from "@bufbuild/protobuf";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { assembleStream } from "../../src/call/stream-assembly.js";
import { chunks as fakeChunks } from "../support/fake-provider.js";

const encoder = new TextEncoder();
const chunks = (n: number, model: string) => fakeChunks(n, model) as JsonObject[];
/** Chunks as a REST record keeps them: SSE blocks, `data: [DONE]` last. */
const blocks = (events: readonly (JsonObject | string)[]) =>
  [...events.map((event) => (typeof event === "string" ? event : JSON.stringify(event))), "[DONE]"].map((data) => encoder.encode(`data: ${data}\n\n`));

const chunk = (choices: JsonObject[], extra: JsonObject = {}): JsonObject => ({
  id: "chatcmpl-1",
  object: "chat.completion.chunk",
  created: 1_700_000_000,
  model: "m",
  choices,
  ...extra,
});

describe("assembleStream", () => {
  it("assembles the fake provider's stream into a chat.completion", () => {
    const stream = chunks(3, "m");
    expect(assembleStream(stream, false)).toEqual({
      id: "chatcmpl-fake0002",
      object: "chat.completion",
      created: 1_700_000_000,
      model: "m",
      choices: [{ index: 0, message: { role: "assistant", content: "Hello, wörld" }, logprobs: null, finish_reason: "stop" }],
      usage: { prompt_tokens: 9, completion_tokens: 12, total_tokens: 21 },
      chunks: 4,
    });
  });

  it("reads REST SSE blocks as the RPC chunks they carry, [DONE] ignored", () => {
    const stream = chunks(5, "m");
    expect(assembleStream(blocks(stream), false)).toEqual(assembleStream(stream, false));
  });

  it("reads several events in one block, CRLF lines, comments and a last block without its blank line", () => {
    const [a, b, c] = chunks(2, "m").map((event) => JSON.stringify(event));
    const events = [encoder.encode(`: keep-alive\r\n\r\ndata: ${a}\r\n\r\ndata: ${b}\r\n\r\n`), encoder.encode(`event: message\ndata: ${c}`)];
    expect(assembleStream(events, false)).toEqual(assembleStream(chunks(2, "m"), false));
  });

  it("keeps event data that is not a JSON object as text", () => {
    const result = assembleStream(blocks([chunk([{ index: 0, delta: { content: "hi" } }]), "not json", "42"]), false);
    expect(result.unparsed).toEqual(["not json", "42"]);
    expect(result.chunks).toBe(1);
    expect((result.choices as JsonObject[])[0].message).toEqual({ role: "assistant", content: "hi" });
  });

  it("assembles several choices by index, and tool calls by their index", () => {
    const stream = [
      chunk([{ index: 1, delta: { role: "assistant", content: "B" } }, { index: 0, delta: { role: "assistant", content: null, tool_calls: [{ index: 0, id: "call_1", type: "function", function: { name: "get_weather", arguments: "" } }] } }]),
      chunk([{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: '{"city":' } }, { index: 1, id: "call_2", type: "function", function: { name: "get_time", arguments: "{}" } }] } }]),
      chunk([{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: '"Paris"}' } }] } }, { index: 1, delta: { content: "b" } }]),
      chunk([{ index: 0, delta: {}, finish_reason: "tool_calls" }, { index: 1, delta: {}, finish_reason: "stop" }]),
      chunk([], { usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 } }),
    ];
    const result = assembleStream(stream, false);
    expect(result.choices).toEqual([
      {
        index: 0,
        message: {
          role: "assistant",
          content: null,
          tool_calls: [
            { id: "call_1", type: "function", function: { name: "get_weather", arguments: '{"city":"Paris"}' } },
            { id: "call_2", type: "function", function: { name: "get_time", arguments: "{}" } },
          ],
        },
        logprobs: null,
        finish_reason: "tool_calls",
      },
      { index: 1, message: { role: "assistant", content: "Bb" }, logprobs: null, finish_reason: "stop" },
    ]);
    expect(result.usage).toEqual({ prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 });
    expect(result.chunks).toBe(5);
  });

  it("joins other text deltas (refusal, reasoning), concatenates logprobs, and keeps the legacy function_call", () => {
    const stream = [
      chunk([{ index: 0, delta: { reasoning_content: "think", refusal: "no" }, logprobs: { content: [{ token: "a" }] } }]),
      chunk([{ index: 0, delta: { reasoning_content: "ing", refusal: "pe", function_call: { name: "f", arguments: "{" } }, logprobs: { content: [{ token: "b" }] } }]),
      chunk([{ index: 0, delta: { function_call: { arguments: "}" } } }]),
    ];
    expect((assembleStream(stream, false).choices as JsonObject[])[0]).toEqual({
      index: 0,
      message: { role: "assistant", content: null, reasoning_content: "thinking", refusal: "nope", function_call: { name: "f", arguments: "{}" } },
      logprobs: { content: [{ token: "a" }, { token: "b" }] },
      finish_reason: null,
    });
  });

  it("takes usage from the last chunk that has one, and marks a truncated record", () => {
    const stream = [chunk([], { usage: { total_tokens: 1 } }), chunk([], { usage: null }), chunk([], { usage: { total_tokens: 2 } }), chunk([])];
    const result = assembleStream(stream, true);
    expect(result.usage).toEqual({ total_tokens: 2 });
    expect(result.truncated).toBe(true);
    expect(assembleStream(stream, false)).not.toHaveProperty("truncated");
  });

  it("keeps an error event a provider sent midway", () => {
    const result = assembleStream(blocks([chunk([{ index: 0, delta: { content: "a" } }]), { error: { message: "overloaded" } }]), false);
    expect(result.error).toEqual({ message: "overloaded" });
    expect(result.chunks).toBe(2);
  });

  it("gives an empty assembly for no events", () => {
    expect(assembleStream([], false)).toEqual({ id: null, object: "chat.completion", created: null, model: null, choices: [], usage: null, chunks: 0 });
  });

  it("keeps a key named __proto__ as data", () => {
    const delta = JSON.parse('{"__proto__": "x", "content": "c"}') as JsonObject;
    const message = (assembleStream([chunk([{ index: 0, delta }])], false).choices as JsonObject[])[0].message as JsonObject;
    expect(Object.getPrototypeOf(message)).toBe(Object.prototype);
    expect(JSON.parse(JSON.stringify(message))).toEqual(JSON.parse('{"role":"assistant","content":"c","__proto__":"x"}'));
  });
});

describe("assembleStream properties", () => {
  const json = fc.jsonValue({ maxDepth: 4 });
  const object = fc.dictionary(fc.string(), json, { maxKeys: 6 });
  const key = fc.constantFrom("index", "id", "type", "role", "content", "delta", "message", "choices", "tool_calls", "function", "name", "arguments", "usage", "finish_reason", "logprobs", "error", "__proto__");
  /** Chunk-like shapes with any values where a chunk's fields go. */
  const anyShape: fc.Arbitrary<JsonObject> = fc.letrec<{ node: JsonObject }>((tie) => ({
    node: fc.dictionary(key, fc.oneof({ depthSize: "small" }, json, tie("node"), fc.array(fc.oneof(json, tie("node")), { maxLength: 3 })), { maxKeys: 5 }) as fc.Arbitrary<JsonObject>,
  })).node;
  const bytes = fc.oneof(
    fc.uint8Array({ maxLength: 64 }),
    fc.array(fc.oneof(json.map((value) => JSON.stringify(value) ?? "null"), fc.string()), { maxLength: 4 }).map((data) => encoder.encode(data.map((d) => `data: ${d}\n\n`).join(""))),
  );

  it("never throws, and gives a JSON chat.completion, whatever the events", () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(object as fc.Arbitrary<JsonObject>, anyShape, bytes), { maxLength: 8 }), fc.boolean(), (events, truncated) => {
        const result = assembleStream(events, truncated);
        expect(result.object).toBe("chat.completion");
        expect(Array.isArray(result.choices)).toBe(true);
        expect(typeof JSON.stringify(result)).toBe("string");
      }),
      { numRuns: 500 },
    );
  });

  it("joins content deltas in order, the same from RPC chunks and from REST blocks", () => {
    const delta = fc.record({ content: fc.string(), role: fc.constantFrom("assistant", "tool") }, { requiredKeys: ["content"] });
    const pieces = fc.array(fc.record({ index: fc.nat({ max: 2 }), delta }), { maxLength: 12 });
    fc.assert(
      fc.property(pieces, (list) => {
        const stream = list.map((choice) => chunk([choice]));
        const result = assembleStream(stream, false);
        expect(assembleStream(blocks(stream), false)).toEqual(result);
        for (const choice of result.choices as JsonObject[]) {
          const expected = list.filter((piece) => piece.index === choice.index).map((piece) => piece.delta.content).join("");
          expect((choice.message as JsonObject).content).toBe(expected);
        }
        expect((result.choices as JsonObject[]).map((choice) => choice.index)).toEqual([...new Set(list.map((piece) => piece.index))].sort());
      }),
    );
  });
});
