import type { DescMessage, DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { createMethodSerializationLookup } from "@connectrpc/connect/protocol";

/** What decoding gave, as a value to compare: the message, or the error's code and message. */
export type DecodeOutcome = { message: unknown } | { code: Code; error: string } | { foreign: string };

export function outcomeOf(decode: () => unknown): DecodeOutcome {
  try {
    return { message: decode() };
  } catch (e) {
    if (e instanceof ConnectError) return { code: e.code, error: e.rawMessage };
    return { foreign: String(e) };
  }
}

/** What connect-node does with a binary request message for this method: its own serialization. */
export function connectParse(method: DescMethod, bytes: Uint8Array): DecodeOutcome {
  const limits = { readMaxBytes: 0xffffffff, writeMaxBytes: 0xffffffff };
  const parse = createMethodSerializationLookup(method as DescMethod & { input: DescMessage }, undefined, undefined, limits).getI(true);
  return outcomeOf(() => parse.parse(bytes));
}

/**
 * The message codec's contract against connect-node's: the same outcome, except that nesting
 * past protobuf-es's recursion limit is INVALID_ARGUMENT where connect-node says INTERNAL.
 */
export function expectedCodecOutcome(method: DescMethod, bytes: Uint8Array): DecodeOutcome {
  const outcome = connectParse(method, bytes);
  if ("error" in outcome && outcome.error.includes("maximum recursion depth")) {
    return { code: Code.InvalidArgument, error: "message is nested too deeply (more than 100 levels)" };
  }
  return outcome;
}

/**
 * A PassthroughRequest whose deepest message sits at `depth`, counted as protobuf-es counts
 * (the request is 1, its body Struct 2, then each Value, Struct or ListValue one more): a chain
 * of one-entry Structs or of one-item lists ending in `true` (odd depths) or in an empty
 * Struct or list (even depths). Built back to front, so a deep one costs linear time.
 */
export function nestedRequest(depth: number, kind: "struct" | "list"): Uint8Array {
  const reversed: number[] = [];
  const prepend = (...bytes: number[]) => {
    for (let i = bytes.length - 1; i >= 0; i--) reversed.push(bytes[i]);
  };
  const wrap = (tag: number) => prepend(tag, ...varint(reversed.length));
  if (depth % 2 === 1) prepend(0x20, 0x01); // Value { bool_value: true }
  for (let level = depth; level > 2; level--) {
    if (level % 2 === 1) {
      // A Value inside a Struct (an entry "a") or a ListValue (an item); the body is a Struct.
      if (kind === "struct" || level === 3) {
        wrap(0x12);
        prepend(0x0a, 0x01, 0x61);
        wrap(0x0a);
      } else {
        wrap(0x0a);
      }
    } else {
      // A Struct (struct_value, 5) or a ListValue (list_value, 6) inside a Value.
      wrap(kind === "struct" ? 0x2a : 0x32);
    }
  }
  wrap(0x12); // PassthroughRequest.body
  return Uint8Array.from(reversed.reverse());
}

function varint(value: number): number[] {
  const bytes: number[] = [];
  while (value > 0x7f) {
    bytes.push((value & 0x7f) | 0x80);
    value = Math.floor(value / 128);
  }
  bytes.push(value);
  return bytes;
}
