import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { FIXED64, LEN, unusual, VARINT, type PlainField } from "./message-wire.js";

/**
 * Writes a message of plain fields in two passes: the first computes every length-delimited
 * size (in the order the second writes them, so each nested size is known before its bytes),
 * the second writes into one buffer. Throws `unusual` for a value it would not write exactly
 * as protobuf-es does.
 */
export function encodeMessage(message: Record<string, unknown>, fields: PlainField[]): Uint8Array {
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
