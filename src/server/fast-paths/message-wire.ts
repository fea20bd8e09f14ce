/**
 * What the fast message reader and writer share: the wire types and tags of the messages they
 * handle (singular string and google.protobuf.Struct fields) and the signal that hands a
 * message to protobuf-es instead.
 */

export const VARINT = 0;
export const FIXED64 = 1;
export const LEN = 2;

/** Field 1, length-delimited: a Struct's map entry, an entry's key, a ListValue's item. */
export const KEY = (1 << 3) | LEN;
/** Field 2, length-delimited: a Struct entry's value. */
export const ENTRY_VALUE = (2 << 3) | LEN;

/** A top-level field the fast codec reads and writes itself. */
export interface PlainField {
  number: number;
  localName: string;
  kind: "string" | "struct";
}

/** Thrown to hand the message to protobuf-es. */
export const unusual = new Error("not for the fast codec");
