import {
  create,
  fromJson,
  mergeFromJson,
  type DescField,
  type DescMessage,
  type JsonValue,
  type Message,
  type Registry,
} from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  findField,
  isTextField,
  parseFieldText,
  resolveFieldPath,
  setAlongPath,
  setFieldValue,
} from "./field-value.js";
import { decodePathValue, type PathTemplate } from "./path-template.js";

/** How one binding turns path variables, query parameters and body into a request message. */
export interface RequestPlan {
  readonly schema: DescMessage;
  /** One entry per template variable, in the template's order. */
  readonly pathFields: ReadonlyArray<{ readonly name: string; readonly fields: DescField[]; readonly multiSegment: boolean }>;
  readonly body: RequestBodyPlan;
  readonly registry: Registry | undefined;
}

type RequestBodyPlan =
  | { readonly kind: "none" }
  | { readonly kind: "message" }
  | { readonly kind: "field"; readonly field: DescField }
  /** A google.protobuf.Struct field: the parsed JSON object is assigned as is. */
  | { readonly kind: "struct"; readonly field: DescField };

type MessageRecord = Record<string, unknown>;

/** Validates a binding against the request message; throws an Error naming the problem. */
export function compileRequestPlan(
  schema: DescMessage,
  template: PathTemplate,
  body: string,
  registry?: Registry,
): RequestPlan {
  const pathFields = template.variables.map((variable) => {
    const name = variable.fieldPath.join(".");
    const resolved = resolveFieldPath(schema, variable.fieldPath);
    if (resolved.error !== undefined) {
      throw new Error(`path template "${template.source}": ${resolved.error}`);
    }
    const fields = resolved.value!;
    const last = fields[fields.length - 1];
    if (!isTextField(last)) {
      throw new Error(`path template "${template.source}": "${name}" must be a singular scalar field`);
    }
    return { name, fields, multiSegment: variable.multiSegment };
  });
  let bodyPlan: RequestBodyPlan = { kind: "none" };
  if (body === "*") {
    bodyPlan = { kind: "message" };
  } else if (body !== "") {
    const field = findField(schema, body);
    if (field === undefined) {
      throw new Error(`body "${body}": ${schema.typeName} has no such field`);
    }
    if (pathFields.some((p) => p.fields.length === 1 && p.fields[0] === field)) {
      throw new Error(`body "${body}" is also bound by path template "${template.source}"`);
    }
    const isStruct = field.fieldKind === "message" && field.message.typeName === "google.protobuf.Struct";
    bodyPlan = isStruct ? { kind: "struct", field } : { kind: "field", field };
  }
  return { schema, pathFields, body: bodyPlan, registry };
}

/**
 * Builds the request message: the body first, then the path variables, then the query
 * parameters. Throws INVALID_ARGUMENT for anything that does not fit the message. A query
 * parameter that binds no field (unknown, or the body binds every field) is ignored, as
 * grpc-gateway does, unless `rejectUnknownQuery` is set.
 */
export function buildRequestMessage(
  plan: RequestPlan,
  pathValues: readonly string[],
  query: string,
  body: Uint8Array,
  rejectUnknownQuery = false,
): Message {
  const message = readBody(plan, body) as unknown as MessageRecord;
  for (let i = 0; i < plan.pathFields.length; i++) {
    const { name, fields, multiSegment } = plan.pathFields[i];
    const text = decodePathValue(pathValues[i], multiSegment);
    if (text === undefined) {
      throw invalidArgument(`path variable "${name}" is not validly percent-encoded`);
    }
    const parsed = parseFieldText(fields[fields.length - 1], text);
    if (parsed.error !== undefined) {
      throw invalidArgument(`path variable "${name}": ${parsed.error}`);
    }
    setAlongPath(message, fields, parsed.value);
  }
  if (query !== "") {
    applyQuery(plan, message, query, rejectUnknownQuery);
  }
  return message as unknown as Message;
}

function readBody(plan: RequestPlan, body: Uint8Array): Message {
  const { schema } = plan;
  const bodyPlan = plan.body;
  if (bodyPlan.kind === "none") {
    return create(schema);
  }
  const json = parseJsonBody(body);
  try {
    switch (bodyPlan.kind) {
      case "message":
        if (json === undefined) return create(schema);
        if (!isJsonObject(json)) throw invalidArgument("request body must be a JSON object");
        return fromJson(schema, json, { registry: plan.registry });
      case "struct": {
        if (!isJsonObject(json)) throw invalidArgument("request body must be a JSON object");
        const message = create(schema);
        setFieldValue(message as unknown as MessageRecord, bodyPlan.field, json);
        return message;
      }
      case "field": {
        const message = create(schema);
        if (json !== undefined) {
          mergeFromJson(schema, message, { [bodyPlan.field.jsonName]: json }, { registry: plan.registry });
        }
        return message;
      }
    }
  } catch (e) {
    if (e instanceof ConnectError) throw e;
    throw invalidArgument(`invalid request body: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** Parses the body as JSON; undefined for an empty body. */
function parseJsonBody(body: Uint8Array): JsonValue | undefined {
  if (body.byteLength === 0) {
    return undefined;
  }
  try {
    const text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("utf8");
    return JSON.parse(text) as JsonValue;
  } catch (e) {
    throw invalidArgument(`request body is not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function isJsonObject(json: JsonValue | undefined): json is { [k: string]: JsonValue } {
  return typeof json == "object" && json !== null && !Array.isArray(json);
}

function applyQuery(plan: RequestPlan, message: MessageRecord, query: string, rejectUnknown: boolean): void {
  let seen: Set<string> | undefined;
  for (const [key, text] of new URLSearchParams(query)) {
    if (key === "") continue;
    if (plan.body.kind === "message") {
      if (!rejectUnknown) continue;
      throw invalidArgument(`unknown query parameter "${key}": the request body binds every field`);
    }
    const resolved = resolveFieldPath(plan.schema, key.split("."));
    if (resolved.error !== undefined) {
      if (!rejectUnknown) continue;
      throw invalidArgument(`unknown query parameter "${key}"`);
    }
    const fields = resolved.value!;
    if (fields[0] === bodyField(plan)) {
      throw invalidArgument(`query parameter "${key}" is bound by the request body`);
    }
    if (plan.pathFields.some((p) => sameFields(p.fields, fields))) {
      throw invalidArgument(`query parameter "${key}" is bound by the path`);
    }
    const last = fields[fields.length - 1];
    if (last.fieldKind !== "list") {
      const name = fields.map((f) => f.name).join(".");
      seen ??= new Set();
      if (seen.has(name)) {
        throw invalidArgument(`query parameter "${key}" is given more than once`);
      }
      seen.add(name);
    }
    const parsed = parseFieldText(last, text);
    if (parsed.error !== undefined) {
      throw invalidArgument(`query parameter "${key}": ${parsed.error}`);
    }
    setAlongPath(message, fields, parsed.value);
  }
}

function bodyField(plan: RequestPlan): DescField | undefined {
  return plan.body.kind === "field" || plan.body.kind === "struct" ? plan.body.field : undefined;
}

function sameFields(a: readonly DescField[], b: readonly DescField[]): boolean {
  return a.length === b.length && a.every((field, i) => field === b[i]);
}

function invalidArgument(message: string): ConnectError {
  return new ConnectError(message, Code.InvalidArgument);
}
