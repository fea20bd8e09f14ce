/**
 * The google.api.HttpRule path template grammar:
 *
 *     Template = "/" Segments [ Verb ] ;
 *     Segments = Segment { "/" Segment } ;
 *     Segment  = "*" | "**" | LITERAL | Variable ;
 *     Variable = "{" FieldPath [ "=" Segments ] "}" ;
 *     FieldPath = IDENT { "." IDENT } ;
 *     Verb     = ":" LITERAL ;
 *
 * `**` must be the last segment. One trailing `/` is accepted (and ignored when matching).
 */
export type TemplateSegment =
  | { readonly kind: "literal"; readonly value: string }
  | { readonly kind: "single" }
  | { readonly kind: "multi" };

export interface TemplateVariable {
  /** Field names from the root message, e.g. ["note", "name"]. */
  readonly fieldPath: readonly string[];
  /** The first template segment the variable covers. */
  readonly start: number;
  /** One past the last template segment the variable covers. */
  readonly end: number;
  /** True unless the variable is exactly one `*`: then `%2F` stays encoded in its value. */
  readonly multiSegment: boolean;
}

export interface PathTemplate {
  readonly source: string;
  readonly segments: readonly TemplateSegment[];
  readonly variables: readonly TemplateVariable[];
  readonly verb: string | undefined;
  /** True when the last segment is `**`. */
  readonly endsWithMulti: boolean;
}

const identRegExp = /^[A-Za-z_][A-Za-z0-9_]*$/;
const literalForbidden = /[{}=*]/;

/** Parses an HttpRule path template. */
export function parsePathTemplate(source: string): { value?: PathTemplate; error?: string } {
  if (!source.startsWith("/")) {
    return { error: `path template "${source}" must start with "/"` };
  }
  let path = source;
  let verb: string | undefined;
  const colon = source.lastIndexOf(":");
  if (colon > source.lastIndexOf("/") && colon > source.lastIndexOf("}")) {
    verb = source.slice(colon + 1);
    path = source.slice(0, colon);
    if (verb === "" || literalForbidden.test(verb)) {
      return { error: `path template "${source}" has an invalid verb` };
    }
  }
  if (path.length > 1 && path.endsWith("/")) {
    path = path.slice(0, -1);
  }
  const segments: TemplateSegment[] = [];
  const variables: TemplateVariable[] = [];
  let pos = 1;
  while (pos < path.length) {
    if (path[pos] === "{") {
      const close = path.indexOf("}", pos);
      if (close < 0) {
        return { error: `path template "${source}" has an unclosed "{"` };
      }
      const variable = parseVariable(path.slice(pos + 1, close), segments);
      if (variable.error !== undefined) {
        return { error: `path template "${source}": ${variable.error}` };
      }
      variables.push(variable.value!);
      pos = close + 1;
    } else {
      let next = path.indexOf("/", pos);
      if (next < 0) next = path.length;
      const segment = parseSegment(path.slice(pos, next));
      if (segment === undefined) {
        return { error: `path template "${source}" has an invalid segment "${path.slice(pos, next)}"` };
      }
      segments.push(segment);
      pos = next;
    }
    if (pos < path.length) {
      if (path[pos] !== "/" || pos + 1 === path.length) {
        return { error: `path template "${source}" has an invalid segment near position ${pos}` };
      }
      pos++;
    }
  }
  const multiAt = segments.findIndex((s) => s.kind === "multi");
  if (multiAt >= 0 && multiAt !== segments.length - 1) {
    return { error: `path template "${source}": "**" must be the last segment` };
  }
  const seen = new Set<string>();
  for (const v of variables) {
    const name = v.fieldPath.join(".");
    if (seen.has(name)) {
      return { error: `path template "${source}" binds "${name}" twice` };
    }
    seen.add(name);
  }
  return { value: { source, segments, variables, verb, endsWithMulti: multiAt >= 0 } };
}

function parseSegment(text: string): TemplateSegment | undefined {
  if (text === "*") return { kind: "single" };
  if (text === "**") return { kind: "multi" };
  if (text === "" || literalForbidden.test(text)) return undefined;
  return { kind: "literal", value: text };
}

function parseVariable(
  inner: string,
  segments: TemplateSegment[],
): { value?: TemplateVariable; error?: string } {
  const eq = inner.indexOf("=");
  const fieldPath = (eq < 0 ? inner : inner.slice(0, eq)).split(".");
  if (!fieldPath.every((name) => identRegExp.test(name))) {
    return { error: `invalid field path "{${inner}}"` };
  }
  const start = segments.length;
  const sub = eq < 0 ? ["*"] : inner.slice(eq + 1).split("/");
  for (const text of sub) {
    const segment = parseSegment(text);
    if (segment === undefined) {
      return { error: `invalid segment "${text}" in variable "{${inner}}"` };
    }
    segments.push(segment);
  }
  const multiSegment = sub.length !== 1 || segments[start].kind !== "single";
  return { value: { fieldPath, start, end: segments.length, multiSegment } };
}

const noValues: string[] = [];

/**
 * Matches request path segments (split at "/", without the leading "/" and a trailing "/")
 * against a template. Returns the raw (still percent-encoded) value of each variable, in the
 * order of `template.variables`, or undefined when the path does not match.
 */
export function matchPathTemplate(
  template: PathTemplate,
  segments: readonly string[],
): string[] | undefined {
  const count = segments.length;
  if (count === 0 && template.segments.length !== 0 && !template.endsWithMulti) {
    return undefined;
  }
  let last = count > 0 ? segments[count - 1] : "";
  if (template.verb !== undefined) {
    const verb = template.verb;
    if (
      count === 0 ||
      last.length <= verb.length ||
      last.charCodeAt(last.length - verb.length - 1) !== 58 /* ":" */ ||
      !last.endsWith(verb)
    ) {
      return undefined;
    }
    last = last.slice(0, last.length - verb.length - 1);
  }
  const fixed = template.endsWithMulti ? template.segments.length - 1 : template.segments.length;
  if (template.endsWithMulti ? count < fixed : count !== fixed) {
    return undefined;
  }
  for (let i = 0; i < fixed; i++) {
    const segment = template.segments[i];
    const text = i === count - 1 ? last : segments[i];
    if (segment.kind === "literal") {
      if (text !== segment.value && !(text.includes("%") && safeDecode(text) === segment.value)) {
        return undefined;
      }
    } else if (text === "") {
      return undefined;
    }
  }
  if (template.variables.length === 0) {
    return noValues;
  }
  const values: string[] = [];
  for (const variable of template.variables) {
    const end = variable.end === template.segments.length && template.endsWithMulti ? count : variable.end;
    let value = "";
    for (let i = variable.start; i < end; i++) {
      if (i > variable.start) value += "/";
      value += i === count - 1 ? last : segments[i];
    }
    values.push(value);
  }
  return values;
}

/**
 * Decodes a variable's raw value: fully for a single-segment variable, and keeping `%2F`
 * encoded for a multi-segment one, as the HttpRule documentation prescribes.
 */
export function decodePathValue(raw: string, multiSegment: boolean): string | undefined {
  if (!raw.includes("%")) {
    return raw;
  }
  if (!multiSegment) {
    return safeDecode(raw);
  }
  const parts = raw.split(/%2F/i);
  for (let i = 0; i < parts.length; i++) {
    const decoded = safeDecode(parts[i]);
    if (decoded === undefined) return undefined;
    parts[i] = decoded;
  }
  return parts.join("%2F");
}

function safeDecode(text: string): string | undefined {
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}

/** Splits a request path (without query) into segments, ignoring one trailing "/". */
export function splitRequestPath(path: string): string[] {
  let end = path.length;
  if (end > 1 && path.charCodeAt(end - 1) === 47 /* "/" */) end--;
  if (end <= 1) return [];
  return path.slice(1, end).split("/");
}
