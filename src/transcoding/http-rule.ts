import { getOption, hasOption, type DescMethod } from "@bufbuild/protobuf";
import { http } from "../gen/google/api/annotations_pb.js";
import type { HttpRule } from "../gen/google/api/http_pb.js";

/** One REST binding of a method: the rule itself or one of its additional_bindings. */
export interface HttpBinding {
  /** "GET", "POST", ..., or a custom kind as written in the rule. */
  readonly httpMethod: string;
  readonly template: string;
  /** "" (no body), "*" (the whole request message) or a top-level field name. */
  readonly body: string;
  /** "" (the whole response message) or a top-level field name. */
  readonly responseBody: string;
}

/**
 * Reads the google.api.http bindings of a method from its descriptor options. Returns an
 * empty list for a method without the option; throws for a rule without a pattern.
 */
export function readHttpBindings(method: DescMethod): HttpBinding[] {
  if (!hasOption(method, http)) {
    return [];
  }
  const rule = getOption(method, http);
  const bindings = [toBinding(method, rule)];
  // Nested additional_bindings are not allowed by the HttpRule documentation; they are ignored.
  for (const additional of rule.additionalBindings) {
    bindings.push(toBinding(method, additional));
  }
  return bindings;
}

function toBinding(method: DescMethod, rule: HttpRule): HttpBinding {
  const { pattern } = rule;
  let httpMethod: string;
  let template: string;
  switch (pattern.case) {
    case "get":
    case "put":
    case "post":
    case "delete":
    case "patch":
      httpMethod = pattern.case.toUpperCase();
      template = pattern.value;
      break;
    case "custom":
      httpMethod = pattern.value.kind;
      template = pattern.value.path;
      break;
    default:
      throw new Error(`google.api.http rule of ${method.parent.typeName}.${method.name} has no pattern`);
  }
  return { httpMethod, template, body: rule.body, responseBody: rule.responseBody };
}
