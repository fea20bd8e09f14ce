import { create, fromBinary, toBinary, type DescMessage, type JsonObject, type JsonValue } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Health } from "../../../src/gen/grpc/health/v1/health_pb.js";
import { PassthroughRequestSchema, PassthroughResponseSchema, PassthroughService, PassthroughStreamResponseSchema } from "../../../src/gen/smarter/prompt/v1/passthrough_pb.js";
import { createMessageCodec } from "../../../src/server/fast-paths/message-codec.js";
import { expectedCodecOutcome, nestedRequest, outcomeOf } from "../../support/protobuf-reference.js";

// The fast path reads untrusted bytes with its own codec: it must write exactly what
// protobuf-es writes, and read exactly what connect-node reads (or fail as it does).

const key = fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom("__proto__", "constructor", "toString", "", "é", "👋"));
const number = fc.oneof(fc.double(), fc.constantFrom(0, -0, 1, -1, 2 ** 53, Number.MAX_VALUE, Number.MIN_VALUE));
const text = fc.oneof(fc.string({ maxLength: 20 }), fc.string({ unit: "grapheme", maxLength: 20 }), fc.constant("x".repeat(200)));
const { object: jsonObject } = fc.letrec<{ value: JsonValue; object: JsonObject }>((tie) => ({
  value: fc.oneof({ depthSize: "small" }, fc.constant(null), fc.boolean(), number, text, fc.array(tie("value"), { maxLength: 4 }), tie("object")),
  object: fc.dictionary(key, tie("value"), { maxKeys: 5 }) as fc.Arbitrary<JsonObject>,
}));

const request = fc.record({ providerName: text, body: fc.option(jsonObject, { nil: undefined }) });
const messages: Array<{ name: string; schema: DescMessage; init: fc.Arbitrary<Record<string, unknown>> }> = [
  { name: "PassthroughRequest", schema: PassthroughRequestSchema, init: request },
  { name: "PassthroughResponse", schema: PassthroughResponseSchema, init: fc.record({ body: fc.option(jsonObject, { nil: undefined }) }) },
  { name: "PassthroughStreamResponse", schema: PassthroughStreamResponseSchema, init: fc.record({ chunk: jsonObject }) },
];

/** Bytes near valid ones: a valid encoding with bytes replaced, cut, inserted or repeated. */
function mutated(valid: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> {
  const edit = fc.tuple(fc.nat(), fc.constantFrom("replace", "cut", "insert", "repeat", "truncate"), fc.uint8Array({ minLength: 1, maxLength: 3 }));
  return fc.tuple(valid, fc.array(edit, { minLength: 1, maxLength: 3 })).map(([bytes, edits]) => {
    let out = Array.from(bytes);
    for (const [at, kind, data] of edits) {
      const i = out.length === 0 ? 0 : at % out.length;
      if (kind === "replace") out.splice(i, data.length, ...data);
      else if (kind === "cut") out.splice(i, data[0] % 4);
      else if (kind === "insert") out.splice(i, 0, ...data);
      else if (kind === "repeat") out.splice(i, 0, ...out.slice(i, i + 1 + (data[0] % 8)));
      else out = out.slice(0, i);
    }
    return Uint8Array.from(out);
  });
}

/**
 * Encodings of Struct, Value and ListValue (a request's body) as an encoder never writes them:
 * a Value with two kinds or none, an entry with two values or no key, a field of the wrong
 * wire type, an unknown field, invalid UTF-8, a null_value other than 0.
 */
const oddBody = fc.letrec<{ struct: number[]; value: number[]; list: number[] }>((tie) => {
  const len = (number: number, payload: number[]) => [...varint((number << 3) | 2), ...varint(payload.length), ...payload];
  const utf8 = fc.oneof(
    { arbitrary: fc.string({ maxLength: 6 }).map((s) => Array.from(Buffer.from(s))), weight: 40 },
    fc.constant<number[]>([0xff]),
    fc.constant(Array.from(Buffer.from("__proto__"))),
  );
  // Now and then a record no encoder writes there.
  const odd = fc.oneof(
    { arbitrary: fc.constant([]), weight: 40 },
    fc.constant([0x78, 0x01]), // field 15, varint: unknown
    fc.constant([0x08, 0x01]), // field 1 as a varint where a message is due
    fc.constant([0x15, 0, 0, 0, 0]), // field 2, fixed32
  );
  const container = fc.oneof(tie("struct").map((b) => len(5, b)), tie("list").map((b) => len(6, b)));
  const kind = fc.oneof(
    { depthSize: "small" },
    fc.nat({ max: 3 }).map((n) => [0x08, n]), // null_value
    fc.double().map((d) => [0x11, ...Array.from(doubleBytes(d))]),
    utf8.map((b) => len(3, b)),
    fc.nat({ max: 2 }).map((n) => [0x20, n]), // bool_value
    container,
  );
  const entry = fc
    .tuple(fc.option(utf8, { freq: 10 }), fc.oneof({ arbitrary: fc.tuple(tie("value")), weight: 3 }, fc.tuple(tie("value"), tie("value"))), fc.boolean(), odd)
    .map(([key, values, keyFirst, extra]) => {
      const keyRecord = key === null ? [] : len(1, key);
      const valueRecords = values.flatMap((v) => len(2, v));
      return [...(keyFirst ? keyRecord : []), ...valueRecords, ...(keyFirst ? [] : keyRecord), ...extra];
    });
  return {
    struct: fc.tuple(fc.array(entry, { maxLength: 3 }), odd).map(([entries, extra]) => [...entries.flatMap((e) => len(1, e)), ...extra]),
    // Mostly one kind; else two, which protobuf-es merges when both are Structs or lists.
    value: fc.tuple(fc.oneof({ arbitrary: fc.tuple(kind), weight: 3 }, fc.tuple(kind, kind), fc.tuple(container, container)), odd).map(([kinds, extra]) => [...kinds.flat(), ...extra]),
    list: fc.array(tie("value"), { maxLength: 3 }).map((values) => values.flatMap((v) => len(1, v))),
  };
}).struct.map((body) => Uint8Array.from([0x0a, 0x01, 0x70, 0x12, ...varint(body.length), ...body]));

function varint(value: number): number[] {
  const out: number[] = [];
  for (; value > 0x7f; value >>>= 7) out.push((value & 0x7f) | 0x80);
  out.push(value);
  return out;
}

function doubleBytes(value: number): Buffer {
  const out = Buffer.alloc(8);
  out.writeDoubleLE(value);
  return out;
}

describe.each(messages)("createMessageCodec($name)", ({ schema, init }) => {
  const codec = createMessageCodec(schema);
  it("writes any message byte for byte as protobuf-es does, and reads it back as protobuf-es does", () => {
    fc.assert(
      fc.property(init, (fields) => {
        const message = create(schema, fields as never);
        const expected = toBinary(schema, message);
        expect(Buffer.from(codec.encode(message)).equals(Buffer.from(expected))).toBe(true);
        expect(codec.decode(expected)).toEqual(fromBinary(schema, expected));
      }),
      { numRuns: 100 },
    );
  });
});

// Requests are what callers send: the codec reads them from untrusted bytes.
describe("createMessageCodec(PassthroughRequest) reading untrusted bytes", () => {
  const method = PassthroughService.method.passthrough;
  const codec = createMessageCodec(method.input);
  const expectConnectNodesOutcome = (bytes: Uint8Array) => {
    const outcome = outcomeOf(() => codec.decode(bytes));
    expect(outcome).not.toHaveProperty("foreign");
    expect(outcome).toEqual(expectedCodecOutcome(method, bytes));
  };

  it("reads any bytes, and bytes near a valid request, as connect-node does: the same message or the same error", () => {
    const valid = request.map((fields) => toBinary(PassthroughRequestSchema, create(PassthroughRequestSchema, fields as never)));
    fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 64 }), mutated(valid)), expectConnectNodesOutcome), { numRuns: 300 });
  });

  it("reads Structs encoded as no encoder writes them as connect-node does", () => {
    fc.assert(fc.property(oddBody, expectConnectNodesOutcome), { numRuns: 500 });
  });

  it("reads messages up to depth 100 as protobuf-es does and refuses deeper ones with INVALID_ARGUMENT", () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 400 }), fc.constantFrom("struct", "list" as const), fc.boolean(), (depth, kind, viaProtobufEs) => {
        // A leading unknown field makes the codec hand the whole message to protobuf-es.
        const bytes = Uint8Array.from([...(viaProtobufEs ? [0x7a, 0x01, 0x61] : []), ...nestedRequest(depth, kind)]);
        expectConnectNodesOutcome(bytes);
        const outcome = outcomeOf(() => codec.decode(bytes));
        if (depth > 100) expect(outcome).toEqual({ code: Code.InvalidArgument, error: "message is nested too deeply (more than 100 levels)" });
        else expect(outcome).toHaveProperty("message");
      }),
      { numRuns: 60 },
    );
  });
});

describe("createMessageCodec of a message it leaves to protobuf-es", () => {
  const method = Health.method.check;
  const codec = createMessageCodec(method.input);
  it("reads any bytes as connect-node does", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 32 }), (bytes) => {
        expect(outcomeOf(() => codec.decode(bytes))).toEqual(expectedCodecOutcome(method, bytes));
      }),
      { numRuns: 100 },
    );
  });
});
