import {
  create,
  toJson,
  toJsonString,
  type DescField,
  type DescMessage,
  type JsonValue,
  type Message,
  type Registry,
} from "@bufbuild/protobuf";
import { isWrapperDesc } from "@bufbuild/protobuf/wkt";
import { findField, getFieldValue } from "./field-value.js";

/** Serializes a response message (or its response_body field) to the REST JSON body. */
export type ResponseSerializer = (message: Message) => string;

/**
 * Compiles the serializer of a binding. With a response_body field, only that field is
 * written: a google.protobuf.Struct as its JsonObject with JSON.stringify (no reflection walk),
 * an unset message field as `{}`, and any other field as its proto3 JSON value.
 * `emitDefaults` also writes fields at their implicit default (`0`, `""`, `[]`), as grpc-gateway does.
 */
export function compileResponseSerializer(
  schema: DescMessage,
  responseBody: string,
  registry?: Registry,
  emitDefaults = false,
): ResponseSerializer {
  const options = { registry, alwaysEmitImplicit: emitDefaults };
  if (responseBody === "") {
    return (message) => toJsonString(schema, message, options);
  }
  const field = findField(schema, responseBody);
  if (field === undefined) {
    throw new Error(`response_body "${responseBody}": ${schema.typeName} has no such field`);
  }
  if (field.fieldKind === "message" && field.message.typeName === "google.protobuf.Struct") {
    return (message) => JSON.stringify(readField(message, field) ?? {});
  }
  if (field.fieldKind === "message" && !(isWrapperDesc(field.message) && !field.oneof)) {
    const fieldSchema = field.message;
    return (message) => {
      const value = (readField(message, field) as Message | undefined) ?? create(fieldSchema);
      return toJsonString(fieldSchema, value, options);
    };
  }
  const allOptions = { registry, alwaysEmitImplicit: true };
  return (message) => {
    const json = toJson(schema, message, allOptions) as { [k: string]: JsonValue };
    return JSON.stringify(json[field.jsonName] ?? null);
  };
}

function readField(message: Message, field: DescField): unknown {
  return getFieldValue(message as unknown as Record<string, unknown>, field);
}
