import { create, fromBinary, ScalarType, toBinary, type DescField, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { FeatureSet_FieldPresence } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { decodeMessage, nestedTooDeeply, RECURSION_LIMIT } from "./message-reader.js";
import { unusual, type PlainField } from "./message-wire.js";
import { encodeMessage } from "./message-writer.js";

/** Binary serialization of one message type. */
export interface MessageCodec<Desc extends DescMessage = DescMessage> {
  /**
   * Throws a ConnectError for bytes protobuf-es cannot read: INVALID_ARGUMENT for a message
   * nested past RECURSION_LIMIT, else INTERNAL "parse binary: …" as connect's own binary
   * serialization answers.
   */
  decode(bytes: Uint8Array): MessageShape<Desc>;
  encode(message: MessageShape<Desc>): Uint8Array;
}

/**
 * Binary serialization for the gRPC fast path. A message made only of singular string and
 * google.protobuf.Struct fields (every message of PassthroughService) is read and written here
 * directly between the wire format and the JSON values the handler sees; protobuf-es goes
 * through a reflected Struct/Value message per JSON value, a large share of a gRPC call's CPU.
 * Any other message, and anything unusual on the wire (unknown or repeated fields,
 * invalid UTF-8, a Value without a kind), goes through protobuf-es, so the result is always
 * the same as fromBinary/toBinary (the tests compare them). Both stop at protobuf-es's
 * recursion limit, so a deep message costs no more stack than it allows.
 */
export function createMessageCodec<Desc extends DescMessage>(desc: Desc): MessageCodec<Desc> {
  const general: MessageCodec<Desc> = {
    decode(bytes) {
      try {
        return fromBinary(desc, bytes, readOptions);
      } catch (e) {
        throw parseError(e);
      }
    },
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

const readOptions = { readUnknownFields: true, recursionLimit: RECURSION_LIMIT };

/** protobuf-es's reading error as a ConnectError: its recursion limit is the caller's fault. */
function parseError(e: unknown): ConnectError {
  const message = e instanceof Error ? e.message : String(e);
  if (message.includes("maximum recursion depth")) return nestedTooDeeply();
  return new ConnectError(`parse binary: ${message}`, Code.Internal, undefined, undefined, e);
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
