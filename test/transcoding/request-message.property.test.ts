import { createRegistry, toBinary, type DescMessage, type DescService } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { PassthroughService } from "../../src/gen/smarter/prompt/v1/passthrough_pb.js";
import { readHttpBindings } from "../../src/transcoding/http-rule.js";
import { parsePathTemplate } from "../../src/transcoding/path-template.js";
import { buildRequestMessage, compileRequestPlan, type RequestPlan } from "../../src/transcoding/request-message.js";
import { LibraryService } from "../gen/transcodingtest/v1/library_pb.js";

// A REST request's path variables, query string and body are untrusted: whatever they are, the
// request message is built (and can be serialized), or the call fails with INVALID_ARGUMENT.

interface Binding {
  name: string;
  plan: RequestPlan;
  variables: number;
}

function bindingsOf(service: DescService): Binding[] {
  const registry = createRegistry(service.file);
  return service.methods.flatMap((method) =>
    readHttpBindings(method).map((binding) => {
      const template = parsePathTemplate(binding.template).value!;
      const plan = compileRequestPlan(method.input, template, binding.body, registry);
      return { name: `${method.name} ${binding.httpMethod} ${binding.template}`, plan, variables: template.variables.length };
    }),
  );
}

const bindings = [...bindingsOf(LibraryService), ...bindingsOf(PassthroughService)];

/** The field names of a message, proto and JSON spellings, with those of its message fields dotted. */
function fieldNames(schema: DescMessage, depth = 0): string[] {
  return schema.fields.flatMap((field) => {
    const names = [...new Set([field.name, field.jsonName])];
    if (field.fieldKind !== "message" || depth > 0) return names;
    return [...names, ...fieldNames(field.message, depth + 1).map((sub) => `${field.name}.${sub}`)];
  });
}

const junkName = fc.constantFrom("", "__proto__", "constructor", "toString", "a.b", "x");
const text = fc.oneof(
  fc.constantFrom("1", "-1", "0", "true", "false", "1.5", "1e3", "NaN", "Infinity", "-0", "9223372036854775808", "2147483648", "GENRE_FICTION", "GENRE_X"),
  fc.constantFrom("null", "{}", "[]", '"s"', "2006-01-02T15:04:05Z", "1s", "%zz", "%2F", "a%2Fb", "notes/n1", "files/a/b", "AA=="),
  fc.string({ maxLength: 10 }),
  fc.string({ unit: "binary", maxLength: 6 }),
);
const jsonValue = fc.jsonValue({ maxDepth: 3 });

/** Path values, a query string and a body for a binding: mostly near what it accepts, sometimes anything. */
function requestParts({ plan, variables }: Binding) {
  const names = fieldNames(plan.schema);
  // A message without fields (ListProviders's request) has only junk names to be sent.
  const name = names.length === 0 ? junkName : fc.oneof({ arbitrary: fc.constantFrom(...names), weight: 4 }, junkName);
  const query = fc.oneof(
    { arbitrary: fc.array(fc.tuple(name, text), { maxLength: 3 }).map((pairs) => new URLSearchParams(pairs).toString()), weight: 4 },
    fc.string({ maxLength: 20 }),
  );
  const topName = name.map((n) => n.split(".")[0]);
  const object = fc.dictionary(topName, fc.oneof(jsonValue, fc.dictionary(name.map((n) => n.split(".").at(-1)!), jsonValue, { maxKeys: 3 })), { maxKeys: 4 });
  const body = fc.oneof(
    { arbitrary: object.map((value) => Buffer.from(JSON.stringify(value))), weight: 4 },
    jsonValue.map((value) => Buffer.from(JSON.stringify(value))),
    fc.constant(Buffer.alloc(0)),
    fc.string({ maxLength: 20 }).map((junk) => Buffer.from(junk)),
    fc.uint8Array({ maxLength: 20 }),
  );
  return fc.tuple(fc.array(text, { minLength: variables, maxLength: variables }), query, body);
}

describe.each(bindings)("buildRequestMessage for $name", (binding) => {
  it("builds a message that serializes, or fails with INVALID_ARGUMENT, whatever the path, query and body", () => {
    fc.assert(
      fc.property(requestParts(binding), ([pathValues, query, body]) => {
        let message;
        try {
          message = buildRequestMessage(binding.plan, pathValues, query, body);
        } catch (e) {
          expect(e).toBeInstanceOf(ConnectError);
          expect(Code[(e as ConnectError).code]).toBe(Code[Code.InvalidArgument]);
          return;
        }
        expect(() => toBinary(binding.plan.schema, message)).not.toThrow();
      }),
      { numRuns: 150 },
    );
  });
});
