import {
  create,
  fromJson,
  protoInt64,
  ScalarType,
  type DescEnum,
  type DescField,
  type DescMessage,
} from "@bufbuild/protobuf";
import { hasCustomJsonRepresentation, isWrapperDesc } from "@bufbuild/protobuf/wkt";
import { base64Decode } from "@bufbuild/protobuf/wire";

/**
 * Text (path variables, query parameters) to protobuf field values, and setting them along a
 * field path on a message, the way grpc-gateway does.
 */

const fieldsByName = new WeakMap<DescMessage, Map<string, DescField>>();

/** Finds a field by its proto name (snake_case) or its JSON name (lowerCamelCase). */
export function findField(message: DescMessage, name: string): DescField | undefined {
  let byName = fieldsByName.get(message);
  if (byName === undefined) {
    byName = new Map();
    for (const field of message.fields) {
      byName.set(field.jsonName, field);
    }
    for (const field of message.fields) {
      byName.set(field.name, field);
    }
    fieldsByName.set(message, byName);
  }
  return byName.get(name);
}

/**
 * Resolves a dotted field path from a message. Every field but the last must be a singular
 * message field of an ordinary message type (not a well-known type with a JSON form).
 */
export function resolveFieldPath(
  root: DescMessage,
  names: readonly string[],
): { value?: DescField[]; error?: string } {
  const fields: DescField[] = [];
  let message = root;
  for (let i = 0; i < names.length; i++) {
    const field = findField(message, names[i]);
    if (field === undefined) {
      return { error: `${message.typeName} has no field "${names[i]}"` };
    }
    fields.push(field);
    if (i < names.length - 1) {
      if (field.fieldKind !== "message" || hasCustomJsonRepresentation(field.message)) {
        return { error: `${message.typeName}.${field.name} is not a message field` };
      }
      message = field.message;
    }
  }
  return { value: fields };
}

/** True for a field that holds a value parsed from one string: scalar, enum, or a wrapper. */
export function isTextField(field: DescField): boolean {
  switch (field.fieldKind) {
    case "scalar":
    case "enum":
      return true;
    case "message":
      return isWrapperDesc(field.message);
    default:
      return false;
  }
}

/** Parses the text of a path variable or query parameter into a value for `field`. */
export function parseFieldText(field: DescField, text: string): { value?: unknown; error?: string } {
  switch (field.fieldKind) {
    case "scalar":
      return parseScalar(field.scalar, text, field.longAsString);
    case "enum":
      return parseEnum(field.enum, text);
    case "list":
      if (field.listKind === "scalar") return parseScalar(field.scalar, text, field.longAsString);
      if (field.listKind === "enum") return parseEnum(field.enum, text);
      return { error: "a repeated message field cannot be set from text" };
    case "map":
      return { error: "a map field cannot be set from text" };
    case "message":
      if (isWrapperDesc(field.message) && !field.oneof) {
        return parseScalar(field.message.fields[0].scalar!, text, false);
      }
      // Timestamp, Duration, FieldMask and wrappers in a oneof have a JSON string form.
      try {
        return { value: fromJson(field.message, text) };
      } catch (e) {
        return { error: e instanceof Error ? e.message : String(e) };
      }
  }
}

const int32Min = -0x80000000;
const int32Max = 0x7fffffff;
const uint32Max = 0xffffffff;
const integerRegExp = /^-?\d+$/;

function parseScalar(type: ScalarType, text: string, longAsString: boolean): { value?: unknown; error?: string } {
  switch (type) {
    case ScalarType.STRING:
      return { value: text };
    case ScalarType.BOOL:
      if (text === "true" || text === "1") return { value: true };
      if (text === "false" || text === "0") return { value: false };
      return { error: `"${text}" is not a bool` };
    case ScalarType.BYTES:
      try {
        return { value: base64Decode(text) };
      } catch {
        return { error: `"${text}" is not base64` };
      }
    case ScalarType.DOUBLE:
    case ScalarType.FLOAT: {
      const value = Number(text);
      if (text.trim() === "" || (Number.isNaN(value) && text !== "NaN")) {
        return { error: `"${text}" is not a number` };
      }
      return { value };
    }
    case ScalarType.INT64:
    case ScalarType.SINT64:
    case ScalarType.SFIXED64:
    case ScalarType.UINT64:
    case ScalarType.FIXED64: {
      const unsigned = type === ScalarType.UINT64 || type === ScalarType.FIXED64;
      if (!integerRegExp.test(text)) {
        return { error: `"${text}" is not an integer` };
      }
      try {
        const value = unsigned ? protoInt64.uParse(text) : protoInt64.parse(text);
        return { value: longAsString ? String(value) : value };
      } catch {
        return { error: `"${text}" is out of range` };
      }
    }
    default: {
      // INT32, SINT32, SFIXED32, UINT32, FIXED32
      const unsigned = type === ScalarType.UINT32 || type === ScalarType.FIXED32;
      if (!integerRegExp.test(text)) {
        return { error: `"${text}" is not an integer` };
      }
      const value = Number(text);
      if (unsigned ? value < 0 || value > uint32Max : value < int32Min || value > int32Max) {
        return { error: `"${text}" is out of range` };
      }
      return { value };
    }
  }
}

function parseEnum(descEnum: DescEnum, text: string): { value?: unknown; error?: string } {
  if (integerRegExp.test(text)) {
    const value = Number(text);
    if (value >= int32Min && value <= int32Max) {
      return { value };
    }
  }
  for (const value of descEnum.values) {
    if (value.name === text) {
      return { value: value.number };
    }
  }
  return { error: `"${text}" is not a value of ${descEnum.typeName}` };
}

type MessageRecord = Record<string, unknown>;

/** Reads a field of a message, following its oneof. */
export function getFieldValue(message: MessageRecord, field: DescField): unknown {
  if (field.oneof) {
    const group = message[field.oneof.localName] as { case?: string; value?: unknown };
    return group.case === field.localName ? group.value : undefined;
  }
  return message[field.localName];
}

/** Writes a field of a message, selecting its oneof case. */
export function setFieldValue(message: MessageRecord, field: DescField, value: unknown): void {
  if (field.oneof) {
    message[field.oneof.localName] = { case: field.localName, value };
  } else {
    message[field.localName] = value;
  }
}

/**
 * Sets `value` on the last field of `fields` (appending for a repeated field), creating the
 * intermediate messages.
 */
export function setAlongPath(root: MessageRecord, fields: readonly DescField[], value: unknown): void {
  let target = root;
  for (let i = 0; i < fields.length - 1; i++) {
    const field = fields[i] as DescField & { fieldKind: "message" };
    let child = getFieldValue(target, field) as MessageRecord | undefined;
    if (child === undefined) {
      child = create(field.message) as unknown as MessageRecord;
      setFieldValue(target, field, child);
    }
    target = child;
  }
  const last = fields[fields.length - 1];
  if (last.fieldKind === "list") {
    (target[last.localName] as unknown[]).push(value);
  } else {
    setFieldValue(target, last, value);
  }
}
