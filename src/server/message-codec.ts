import { isUtf8 } from "node:buffer";
import { create, fromBinary, ScalarType, toBinary, type DescField, type DescMessage, type JsonObject, type JsonValue, type MessageShape } from "@bufbuild/protobuf";
import { FeatureSet_FieldPresence } from "@bufbuild/protobuf/wkt";

/** Binary serialization of one message type. */
export interface MessageCodec<Desc extends DescMessage = DescMessage> {
  decode(bytes: Uint8Array): MessageShape<Desc>;
  encode(message: MessageShape<Desc>): Uint8Array;
}

/**
 * Binary serialization for the gRPC fast path. A message made only of singular string and
 * google.protobuf.Struct fields (every message of PassthroughService) is read and written here
 * directly between the wire format and the JSON values the handler sees; protobuf-es goes
 * through a reflected Struct/Value message per JSON value, which cost about a tenth of a gRPC
 * call's CPU. Any other message, and anything unusual on the wire (unknown or repeated fields,
 * invalid UTF-8, a Value without a kind), goes through protobuf-es, so the result is always
 * the same as fromBinary/toBinary (the tests compare them).
 */
export function createMessageCodec<Desc extends DescMessage>(desc: Desc): MessageCodec<Desc> {
  const general: MessageCodec<Desc> = {
    decode: (bytes) => fromBinary(desc, bytes, { readUnknownFields: true }),
    encode: (message) => toBinary(desc, message),
  };
  const fields = desc.fields.map(plainField);
  if (desc.oneofs.length > 0 || fields.some((field) => field === undefined)) return general;
  const byNumber = new Map(fields.map((field) => [field!.number, field!]));
  const ordered = fields as PlainField[];

  return {
    decode(bytes) {
      try {
        return create(desc, decodeMessage(bytes, byNumber) as never) as MessageShape<Desc>;
      } catch (e) {
        if (e !== unusual) throw e;
        return general.decode(bytes);
      }
    },
    encode(message) {
      if ((message as { $unknown?: unknown[] }).$unknown?.length) return general.encode(message);
      try {
        return encodeMessage(message as unknown as Record<string, unknown>, ordered);
      } catch (e) {
        if (e !== unusual) throw e;
        return general.encode(message);
      }
    },
  };
}

interface PlainField {
  number: number;
  localName: string;
  kind: "string" | "struct";
}

function plainField(field: DescField): PlainField | undefined {
  if (field.oneof !== undefined) return undefined;
  if (field.fieldKind === "scalar" && field.scalar === ScalarType.STRING && field.presence === FeatureSet_FieldPresence.IMPLICIT) {
    return { number: field.number, localName: field.localName, kind: "string" };
  }
  if (field.fieldKind === "message" && field.message.typeName === "google.protobuf.Struct") {
    return { number: field.number, localName: field.localName, kind: "struct" };
  }
  return undefined;
}

/** Thrown to hand the message to protobuf-es. */
const unusual = new Error("not for the fast codec");

const VARINT = 0;
const FIXED64 = 1;
const LEN = 2;

// ---- reading ----
// One cursor over the whole message; each nested message is read up to its own end.

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

function decodeMessage(bytes: Uint8Array, fields: Map<number, PlainField>): Record<string, unknown> {
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
    init[field.localName] = field.kind === "string" ? reader.string(fieldEnd) : readStruct(reader, fieldEnd);
  }
  return init;
}

const KEY = (1 << 3) | LEN;
const ENTRY_VALUE = (2 << 3) | LEN;

function readStruct(reader: Reader, end: number): JsonObject {
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
      else if (tag === ENTRY_VALUE) value = readValue(reader, fieldEnd);
      else throw unusual;
    }
    // A missing key or value, or a key that would be a prototype, is protobuf-es's to judge.
    if (key === undefined || value === undefined || key === "__proto__") throw unusual;
    object[key] = value;
  }
  return object;
}

function readValue(reader: Reader, end: number): JsonValue {
  let value: JsonValue | undefined;
  while (reader.pos < end) {
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
        value = readStruct(reader, reader.delimited(end));
        break;
      case (6 << 3) | LEN:
        value = readList(reader, reader.delimited(end));
        break;
      default:
        throw unusual;
    }
  }
  if (value === undefined) throw unusual;
  return value;
}

function readList(reader: Reader, end: number): JsonValue[] {
  const list: JsonValue[] = [];
  while (reader.pos < end) {
    if (reader.varint(end) !== KEY) throw unusual;
    list.push(readValue(reader, reader.delimited(end)));
  }
  return list;
}

// ---- writing ----
// Two passes: the first computes every length-delimited size (in the order the second writes
// them, so each nested size is known before its bytes), the second writes into one buffer.

function encodeMessage(message: Record<string, unknown>, fields: PlainField[]): Uint8Array {
  const sizes: number[] = [];
  let total = 0;
  for (const field of fields) {
    const value = message[field.localName];
    if (field.kind === "string") {
      if (typeof value !== "string") throw unusual;
      if (value.length > 0) total += delimitedSize(field.number, Buffer.byteLength(value));
    } else if (value !== undefined) {
      total += delimitedSize(field.number, structSize(value, sizes));
    }
  }
  const writer = new Writer(Buffer.allocUnsafe(total), sizes);
  for (const field of fields) {
    const value = message[field.localName];
    if (field.kind === "string") {
      if ((value as string).length > 0) writer.string(field.number, value as string);
    } else if (value !== undefined) {
      writer.struct(field.number, value as JsonObject);
    }
  }
  return writer.buf;
}

function varintSize(value: number): number {
  return value < 0x80 ? 1 : value < 0x4000 ? 2 : value < 0x200000 ? 3 : value < 0x10000000 ? 4 : 5;
}

function delimitedSize(fieldNumber: number, length: number): number {
  return varintSize(fieldNumber << 3) + varintSize(length) + length;
}

/** The size of a Struct's fields; pushes it, then its entries' and values' sizes, in writing order. */
function structSize(value: unknown, sizes: number[]): number {
  if (value === null || typeof value !== "object" || Array.isArray(value)) throw unusual;
  const at = sizes.push(0) - 1;
  let size = 0;
  for (const key of Object.keys(value)) {
    const entryAt = sizes.push(0) - 1;
    const entry = delimitedSize(1, Buffer.byteLength(key)) + delimitedSize(2, valueSize((value as JsonObject)[key], sizes));
    sizes[entryAt] = entry;
    size += delimitedSize(1, entry);
  }
  sizes[at] = size;
  return size;
}

function valueSize(value: unknown, sizes: number[]): number {
  const at = sizes.push(0) - 1;
  let size: number;
  switch (typeof value) {
    case "string":
      size = delimitedSize(3, Buffer.byteLength(value));
      break;
    case "number":
      size = 9;
      break;
    case "boolean":
      size = 2;
      break;
    case "object":
      if (value === null) size = 2;
      else if (Array.isArray(value)) size = delimitedSize(6, listSize(value, sizes));
      else size = delimitedSize(5, structSize(value, sizes));
      break;
    default:
      throw unusual;
  }
  sizes[at] = size;
  return size;
}

function listSize(list: unknown[], sizes: number[]): number {
  const at = sizes.push(0) - 1;
  let size = 0;
  for (const item of list) size += delimitedSize(1, valueSize(item, sizes));
  sizes[at] = size;
  return size;
}

/** Up to this many characters, a string's length fits one varint byte when it is ASCII. */
const SHORT = 127;

class Writer {
  pos = 0;
  next = 0;
  constructor(
    readonly buf: Buffer,
    readonly sizes: number[],
  ) {}

  varint(value: number): void {
    while (value > 0x7f) {
      this.buf[this.pos++] = (value & 0x7f) | 0x80;
      value >>>= 7;
    }
    this.buf[this.pos++] = value;
  }

  string(fieldNumber: number, value: string): void {
    this.varint((fieldNumber << 3) | LEN);
    const { buf } = this;
    const length = value.length;
    if (length <= SHORT) {
      // Short ASCII text, most keys and values, is copied here: cheaper than a call into C++.
      let ascii = true;
      for (let i = 0; i < length; i++) {
        if (value.charCodeAt(i) > 0x7f) {
          ascii = false;
          break;
        }
      }
      if (ascii) {
        buf[this.pos++] = length;
        for (let i = 0; i < length; i++) buf[this.pos++] = value.charCodeAt(i);
        return;
      }
    }
    this.varint(Buffer.byteLength(value));
    this.pos += buf.write(value, this.pos, "utf8");
  }

  struct(fieldNumber: number, object: JsonObject): void {
    this.varint((fieldNumber << 3) | LEN);
    this.varint(this.sizes[this.next++]);
    for (const key of Object.keys(object)) {
      this.varint((1 << 3) | LEN);
      this.varint(this.sizes[this.next++]);
      this.string(1, key);
      this.value(2, object[key]);
    }
  }

  value(fieldNumber: number, value: JsonValue): void {
    this.varint((fieldNumber << 3) | LEN);
    this.varint(this.sizes[this.next++]);
    switch (typeof value) {
      case "string":
        this.string(3, value);
        return;
      case "number":
        this.varint((2 << 3) | FIXED64);
        this.pos = this.buf.writeDoubleLE(value, this.pos);
        return;
      case "boolean":
        this.varint((4 << 3) | VARINT);
        this.buf[this.pos++] = value ? 1 : 0;
        return;
      default:
        if (value === null) {
          this.varint((1 << 3) | VARINT);
          this.buf[this.pos++] = 0;
        } else if (Array.isArray(value)) {
          this.varint((6 << 3) | LEN);
          this.varint(this.sizes[this.next++]);
          for (const item of value) this.value(1, item);
        } else {
          this.struct(5, value);
        }
    }
  }
}
