import { create, fromBinary, toBinary, type DescMessage, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { HealthCheckResponseSchema, HealthCheckResponse_ServingStatus } from "../../../src/gen/grpc/health/v1/health_pb.js";
import { PassthroughRequestSchema, PassthroughResponseSchema, PassthroughService, PassthroughStreamResponseSchema } from "../../../src/gen/smarter/prompt/v1/passthrough_pb.js";
import { createMessageCodec } from "../../../src/server/fast-paths/message-codec.js";
import { connectParse, expectedCodecOutcome, nestedRequest, outcomeOf } from "../../support/protobuf-reference.js";

/** A small seeded PRNG (mulberry32), so that a failure reproduces. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const STRINGS = ["", "a", "hello world", "wörld", "👋 emoji", "日本語", "\u0000nul", "x".repeat(200), "é".repeat(100), "0", "12", "__proto__x"];
const NUMBERS = [0, -0, 1, -1, 0.5, 1e300, -1e-300, 2 ** 53, 123456789.125, Number.MAX_VALUE];

function value(next: () => number, depth: number): JsonValue {
  const pick = <T>(list: T[]): T => list[Math.floor(next() * list.length)];
  switch (Math.floor(next() * (depth > 3 ? 4 : 6))) {
    case 0:
      return null;
    case 1:
      return pick(NUMBERS);
    case 2:
      return pick(STRINGS);
    case 3:
      return next() < 0.5;
    case 4:
      return Array.from({ length: Math.floor(next() * 4) }, () => value(next, depth + 1));
    default:
      return object(next, depth + 1);
  }
}

function object(next: () => number, depth: number): JsonObject {
  const result: JsonObject = {};
  const size = Math.floor(next() * 5);
  for (let i = 0; i < size; i++) result[STRINGS[Math.floor(next() * STRINGS.length)] + (next() < 0.3 ? String(i) : "")] = value(next, depth);
  return result;
}

const schemas: Array<[string, DescMessage, (next: () => number) => Record<string, unknown>]> = [
  ["PassthroughRequest", PassthroughRequestSchema, (next) => ({ providerName: next() < 0.2 ? "" : STRINGS[Math.floor(next() * STRINGS.length)], body: next() < 0.1 ? undefined : object(next, 0) })],
  ["PassthroughResponse", PassthroughResponseSchema, (next) => ({ body: next() < 0.1 ? undefined : object(next, 0) })],
  ["PassthroughStreamResponse", PassthroughStreamResponseSchema, (next) => ({ chunk: object(next, 0) })],
];

describe("createMessageCodec", () => {
  it.each(schemas)("writes and reads %s exactly as protobuf-es does", (_name, schema, build) => {
    const codec = createMessageCodec(schema);
    const next = random(42);
    for (let i = 0; i < 500; i++) {
      const message = create(schema, build(next) as never);
      const expected = toBinary(schema, message);
      const bytes = codec.encode(message);
      expect(Buffer.from(bytes).equals(Buffer.from(expected)), `message ${i}`).toBe(true);
      expect(codec.decode(expected)).toEqual(fromBinary(schema, expected));
    }
  });

  const codec = createMessageCodec(PassthroughRequestSchema);
  const base = toBinary(PassthroughRequestSchema, create(PassthroughRequestSchema, { providerName: "p", body: { a: 1, b: [true, null] } }));
  const field = (number: number, wireType: number, payload: number[]) => [(number << 3) | wireType, ...(wireType === 2 ? [payload.length] : []), ...payload];
  /** A Struct's map entry `{key: true}`. */
  const trueEntry = (key: string) => field(1, 2, [...field(1, 2, [...Buffer.from(key)]), ...field(2, 2, [0x20, 0x01])]);

  it.each([
    ["an unknown field", [...base, ...field(15, 2, [0x61])]],
    ["an unknown varint field", [...base, ...field(14, 0, [7])]],
    ["the body twice (merged)", [...base, ...field(2, 2, [0x0a, 0x07, 0x0a, 0x01, 0x63, 0x12, 0x02, 0x20, 0x01])]],
    ["the provider name twice (the last wins)", [...base, ...field(1, 2, [0x71])]],
    ["a Struct entry without a value", [...field(2, 2, [0x0a, 0x03, 0x0a, 0x01, 0x63])]],
    ["a Value without a kind", [...field(2, 2, [0x0a, 0x05, 0x0a, 0x01, 0x63, 0x12, 0x00])]],
    ["a Value with two kinds (the last wins)", [...field(2, 2, [0x0a, 0x09, 0x0a, 0x01, 0x63, 0x12, 0x04, 0x20, 0x01, 0x08, 0x00])]],
    ["a Value with two Structs (merged)", [...field(2, 2, field(1, 2, [...field(1, 2, [0x78]), ...field(2, 2, [...field(5, 2, trueEntry("a")), ...field(5, 2, trueEntry("b"))])]))]],
    ["a Value with two lists (appended)", [...field(2, 2, field(1, 2, [...field(1, 2, [0x78]), ...field(2, 2, [...field(6, 2, field(1, 2, [0x20, 0x01])), ...field(6, 2, field(1, 2, [0x20, 0x00]))])]))]],
    ["a Struct entry with two Struct values (merged)", [...field(2, 2, field(1, 2, [...field(1, 2, [0x78]), ...field(2, 2, field(5, 2, trueEntry("a"))), ...field(2, 2, field(5, 2, trueEntry("b")))]))]],
    ["invalid UTF-8 in a string", [...field(1, 2, [0xff, 0xfe])]],
    ["invalid UTF-8 in a key", [...field(2, 2, [0x0a, 0x07, 0x0a, 0x01, 0xff, 0x12, 0x02, 0x20, 0x01])]],
    ["a truncated message", [...base.subarray(0, base.length - 3)]],
    ["a length past the end", [0x12, 0x7f, 0x0a]],
    ["a key __proto__", [...field(2, 2, [0x0a, 0x0f, 0x0a, 0x09, ...Buffer.from("__proto__"), 0x12, 0x02, 0x20, 0x01])]],
  ])("reads a message with %s as connect-node does", (_name, bytes) => {
    const input = Uint8Array.from(bytes);
    expect(outcomeOf(() => codec.decode(input))).toEqual(connectParse(PassthroughService.method.passthrough, input));
  });

  describe("nesting", () => {
    const unknownField = [0x7a, 0x01, 0x61]; // field 15, "a": sends the message to protobuf-es
    it.each([
      { what: "Structs", kind: "struct", path: "the fast reader", prefix: [] },
      { what: "lists", kind: "list", path: "the fast reader", prefix: [] },
      { what: "Structs", kind: "struct", path: "protobuf-es", prefix: unknownField },
      { what: "lists", kind: "list", path: "protobuf-es", prefix: unknownField },
    ] as const)("of $what is read up to protobuf-es's recursion limit by $path, and past it is INVALID_ARGUMENT", ({ kind, prefix }) => {
      const atLimit = Uint8Array.from([...prefix, ...nestedRequest(100, kind)]);
      expect(codec.decode(atLimit)).toEqual(fromBinary(PassthroughRequestSchema, atLimit));
      for (const depth of [101, 102, 100_001]) {
        const past = Uint8Array.from([...prefix, ...nestedRequest(depth, kind)]);
        expect(outcomeOf(() => codec.decode(past)), `depth ${depth}`).toEqual({ code: Code.InvalidArgument, error: "message is nested too deeply (more than 100 levels)" });
        expect(outcomeOf(() => codec.decode(past))).toEqual(expectedCodecOutcome(PassthroughService.method.passthrough, past));
      }
    });
  });

  it("writes a message carrying unknown fields as protobuf-es does", () => {
    const withUnknown = fromBinary(PassthroughRequestSchema, Uint8Array.from([...base, ...field(15, 2, [0x61])]), { readUnknownFields: true });
    expect(Buffer.from(codec.encode(withUnknown)).equals(Buffer.from(toBinary(PassthroughRequestSchema, withUnknown)))).toBe(true);
  });

  it("leaves a message of other field types to protobuf-es", () => {
    const health = createMessageCodec(HealthCheckResponseSchema);
    const message = create(HealthCheckResponseSchema, { status: HealthCheckResponse_ServingStatus.SERVING });
    expect(health.decode(health.encode(message))).toEqual(message);
  });
});
