import { isUtf8 } from "node:buffer";
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ENTRY_VALUE, FIXED64, KEY, LEN, unusual, VARINT, type PlainField } from "./message-wire.js";

/**
 * How deeply messages may nest: protobuf-es's default recursion limit, counted as it counts
 * (the top-level message is 1; each Struct, Value and ListValue adds one; map entries do not).
 */
export const RECURSION_LIMIT = 100;

/**
 * The answer to a message nested past RECURSION_LIMIT: the caller's request is at fault. No
 * ":" in the text, which connect percent-encodes and grpc-js's decodeURI leaves encoded.
 */
export function nestedTooDeeply(): ConnectError {
  return new ConnectError(`message is nested too deeply (more than ${RECURSION_LIMIT} levels)`, Code.InvalidArgument);
}

class Reader {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  varint(end: number): number {
    if (this.pos < end && this.buf[this.pos] < 0x80) return this.buf[this.pos++];
    let result = 0;
    for (let shift = 0; ; shift += 7) {
      if (this.pos >= end || shift > 63) throw unusual;
      const byte = this.buf[this.pos++];
      result += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return result;
    }
  }

  /** A length-delimited field ending by `end`: returns its end, pos at its start. */
  delimited(end: number): number {
    const length = this.varint(end);
    if (length > end - this.pos) throw unusual;
    return this.pos + length;
  }

  /** UTF-8 text up to `end` (pos moves there); invalid UTF-8 is protobuf-es's error to raise. */
  string(end: number): string {
    const { buf } = this;
    const start = this.pos;
    this.pos = end;
    for (let i = start; i < end; i++) {
      if (buf[i] > 0x7f) {
        if (!isUtf8(buf.subarray(start, end))) throw unusual;
        return buf.toString("utf8", start, end);
      }
    }
    return (buf as LatinSlicing).latin1Slice(start, end);
  }
}

/** Buffer's own method behind toString("latin1"), without the wrapper's encoding lookup. */
type LatinSlicing = Buffer & { latin1Slice(start: number, end: number): string };

/**
 * Reads a message of plain fields into the init object of create(): one cursor over the whole
 * message, each nested message read up to its own end. Throws `unusual` for whatever it would
 * not read exactly as protobuf-es does, and nestedTooDeeply() where protobuf-es would reach
 * its recursion limit.
 */
export function decodeMessage(bytes: Uint8Array, fields: Map<number, PlainField>): Record<string, unknown> {
  const reader = new Reader(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  const end = reader.buf.length;
  const init: Record<string, unknown> = {};
  const seen = new Set<number>();
  while (reader.pos < end) {
    const tag = reader.varint(end);
    const field = fields.get(Math.floor(tag / 8));
    // Unknown fields are kept by protobuf-es; a field seen twice is merged (Struct) or replaced.
    if (field === undefined || tag % 8 !== LEN || seen.has(field.number)) throw unusual;
    seen.add(field.number);
    const fieldEnd = reader.delimited(end);
    init[field.localName] = field.kind === "string" ? reader.string(fieldEnd) : readStruct(reader, fieldEnd, 2 /* under the top-level message */);
  }
  return init;
}

// Each message checks its depth on entry, as protobuf-es does, so that an empty one counts too.

function readStruct(reader: Reader, end: number, depth: number): JsonObject {
  if (depth > RECURSION_LIMIT) throw nestedTooDeeply();
  const object: JsonObject = {};
  while (reader.pos < end) {
    if (reader.varint(end) !== KEY) throw unusual;
    const entryEnd = reader.delimited(end);
    let key: string | undefined;
    let value: JsonValue | undefined;
    while (reader.pos < entryEnd) {
      const tag = reader.varint(entryEnd);
      const fieldEnd = reader.delimited(entryEnd);
      if (tag === KEY) key = reader.string(fieldEnd);
      // A second value merges into the first (two Structs, two lists): protobuf-es's to do.
      else if (tag === ENTRY_VALUE && value === undefined) value = readValue(reader, fieldEnd, depth + 1);
      else throw unusual;
    }
    // A missing key or value, or a key that would be a prototype, is protobuf-es's to judge.
    if (key === undefined || value === undefined || key === "__proto__") throw unusual;
    object[key] = value;
  }
  return object;
}

function readValue(reader: Reader, end: number, depth: number): JsonValue {
  if (depth > RECURSION_LIMIT) throw nestedTooDeeply();
  let value: JsonValue | undefined;
  while (reader.pos < end) {
    // A second kind replaces the first, or merges into it when both are Structs or lists.
    if (value !== undefined) throw unusual;
    switch (reader.varint(end)) {
      case (1 << 3) | VARINT:
        reader.varint(end);
        value = null;
        break;
      case (2 << 3) | FIXED64:
        if (end - reader.pos < 8) throw unusual;
        value = reader.buf.readDoubleLE(reader.pos);
        reader.pos += 8;
        break;
      case (3 << 3) | LEN:
        value = reader.string(reader.delimited(end));
        break;
      case (4 << 3) | VARINT:
        value = reader.varint(end) !== 0;
        break;
      case (5 << 3) | LEN:
        value = readStruct(reader, reader.delimited(end), depth + 1);
        break;
      case (6 << 3) | LEN:
        value = readList(reader, reader.delimited(end), depth + 1);
        break;
      default:
        throw unusual;
    }
  }
  if (value === undefined) throw unusual;
  return value;
}

function readList(reader: Reader, end: number, depth: number): JsonValue[] {
  if (depth > RECURSION_LIMIT) throw nestedTooDeeply();
  const list: JsonValue[] = [];
  while (reader.pos < end) {
    if (reader.varint(end) !== KEY) throw unusual;
    list.push(readValue(reader, reader.delimited(end), depth + 1));
  }
  return list;
}
