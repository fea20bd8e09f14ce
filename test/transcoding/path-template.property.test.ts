import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodePathValue, matchPathTemplate, parsePathTemplate, splitRequestPath, type PathTemplate } from "../../src/transcoding/path-template.js";
import { createRouter, type Route } from "../../src/transcoding/router.js";

// Request paths are untrusted: matching never throws, agrees with a plain regular expression
// built from the template, and percent-encoding a path changes no decoded value.

type Item = { kind: "literal"; value: string } | { kind: "single" } | { kind: "multi" } | { kind: "variable"; sub: Item[] };
interface TemplateCase {
  items: Item[];
  verb?: string;
  trailingSlash: boolean;
}

const literal = fc.constantFrom("a", "b", "ab", "v1", "x.y", "~");
const plainItem: fc.Arbitrary<Item> = fc.oneof(literal.map((value) => ({ kind: "literal" as const, value })), fc.constant({ kind: "single" as const }));
const item: fc.Arbitrary<Item> = fc.oneof(plainItem, fc.array(plainItem, { minLength: 1, maxLength: 2 }).map((sub) => ({ kind: "variable" as const, sub })));
/** A `**` at the end, on its own or as the end of a variable. */
const last: fc.Arbitrary<Item[]> = fc.oneof(
  fc.constant<Item[]>([]),
  fc.constant<Item[]>([{ kind: "multi" }]),
  fc.array(plainItem, { maxLength: 1 }).map((sub) => [{ kind: "variable" as const, sub: [...sub, { kind: "multi" as const }] }]),
);
const templateCase: fc.Arbitrary<TemplateCase> = fc
  .record({ items: fc.array(item, { maxLength: 4 }), last, verb: fc.option(fc.constantFrom("get", "x"), { nil: undefined }), trailingSlash: fc.boolean() })
  .map(({ items, last, verb, trailingSlash }) => {
    const all = [...items, ...last];
    // The grammar has at least one segment before a verb; "/x:v/" would make the verb a literal.
    return { items: all, verb: all.length > 0 ? verb : undefined, trailingSlash: trailingSlash && verb === undefined };
  });

function itemSource(it: Item, names: () => string): string {
  switch (it.kind) {
    case "literal":
      return it.value;
    case "single":
      return "*";
    case "multi":
      return "**";
    case "variable":
      return `{${names()}=${it.sub.map((s) => itemSource(s, names)).join("/")}}`;
  }
}

function source({ items, verb, trailingSlash }: TemplateCase): string {
  let n = 0;
  const names = () => `v${n++}`;
  return "/" + items.map((it) => itemSource(it, names)).join("/") + (verb ? `:${verb}` : "") + (trailingSlash ? "/" : "");
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\~]/g, "\\$&");

/** The reference: a regular expression over the path (one trailing "/" dropped), a group per variable. */
function referenceRegExp({ items, verb }: TemplateCase): RegExp {
  const piece = (it: Item, first: boolean): string => {
    const slash = first ? "" : "/";
    if (it.kind === "literal") return slash + escape(it.value);
    if (it.kind === "single") return slash + "[^/]+";
    if (it.kind === "multi") return first ? "[\\s\\S]*" : "(?:/[\\s\\S]*)?";
    throw new Error("no nested variables");
  };
  const body = items.map((it) => {
    if (it.kind !== "variable") return piece(it, false);
    // The variable's value starts after its first "/"; a lone `**` may also match nothing.
    const inner = it.sub.map((s, i) => piece(s, i === 0)).join("");
    return it.sub[0].kind === "multi" ? `(?:/(${inner}))?` : `/(${inner})`;
  });
  return new RegExp(`^${items.length === 0 ? "/" : body.join("")}${verb ? `:${escape(verb)}` : ""}$`);
}

function referenceMatch(template: TemplateCase, path: string): string[] | undefined {
  const stripped = path.length > 1 && path.endsWith("/") ? path.slice(0, -1) : path;
  const match = referenceRegExp(template).exec(stripped);
  return match === null ? undefined : match.slice(1).map((value) => value ?? "");
}

function parse(template: TemplateCase): PathTemplate {
  const { value, error } = parsePathTemplate(source(template));
  expect(error, source(template)).toBeUndefined();
  return value!;
}

/** Paths near the template: its literals and verbs, other text, empty segments, colons. */
const nearPath = fc
  .array(fc.oneof(literal, fc.constantFrom("", "c", "get", ":get", "a:x", "b:get", "é")), { maxLength: 6 })
  .chain((segments) => fc.tuple(fc.constant(segments), fc.constantFrom("", "/", ":get", ":x", "//")))
  .map(([segments, end]) => "/" + segments.join("/") + end);
/** Any request path: Node.js gives the transcoder req.url, which starts with "/" (origin form). */
const anyPath = fc
  .oneof(nearPath, fc.webPath(), fc.string({ unit: fc.constantFrom("/", "%", "2", "F", "a", ":", "é", "\u{1f600}", "%zz"), maxLength: 16 }))
  .map((path) => (path.startsWith("/") ? path : `/${path}`));

/** The path with a few characters percent-encoded, leaving the "/" separators and the verb as they are. */
function percentEncodeSome(path: string, positions: number[], verb: string | undefined): string {
  const chars = [...path];
  const keep = chars.length - (verb ? verb.length + 1 : 0) - (path.endsWith("/") ? 1 : 0);
  for (const p of positions) {
    const i = 1 + (p % Math.max(keep - 1, 1));
    if (i < keep && chars[i] !== "/" && !chars[i].startsWith("%")) {
      chars[i] = Array.from(Buffer.from(chars[i]), (byte) => `%${byte.toString(16).toUpperCase().padStart(2, "0")}`).join("");
    }
  }
  return chars.join("");
}

describe("parsePathTemplate and matchPathTemplate", () => {
  it("parse every generated template, and match as the reference regular expression does", () => {
    fc.assert(
      fc.property(templateCase, nearPath, (template, path) => {
        expect(matchPathTemplate(parse(template), splitRequestPath(path)), `${source(template)} ${path}`).toEqual(referenceMatch(template, path));
      }),
      { numRuns: 1000 },
    );
  });

  it("never throw on any path, and a percent-encoded path matches with the same decoded values", () => {
    fc.assert(
      fc.property(templateCase, anyPath, fc.array(fc.nat(), { maxLength: 4 }), (template, path, positions) => {
        const parsed = parse(template);
        const values = matchPathTemplate(parsed, splitRequestPath(path));
        if (values === undefined || path.includes("%")) return;
        const encoded = matchPathTemplate(parsed, splitRequestPath(percentEncodeSome(path, positions, template.verb)));
        expect(encoded).toBeDefined();
        const decoded = encoded!.map((raw, i) => decodePathValue(raw, parsed.variables[i].multiSegment));
        expect(decoded).toEqual(values.map((raw, i) => decodePathValue(raw, parsed.variables[i].multiSegment)));
      }),
      { numRuns: 500 },
    );
  });
});

describe("parsePathTemplate", () => {
  it("never throws on any text", () => {
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom("/", "{", "}", "=", "*", ":", ".", "a", "_", "1"), maxLength: 16 }), (text) => {
        const { value, error } = parsePathTemplate(`/${text}`);
        expect(value === undefined).toBe(error !== undefined);
      }),
      { numRuns: 300 },
    );
  });
});

describe("decodePathValue", () => {
  const segment = fc.string({ unit: "grapheme", maxLength: 8 });
  it("gives back a single-segment value that was percent-encoded", () => {
    fc.assert(
      fc.property(segment, (value) => {
        expect(decodePathValue(encodeURIComponent(value), false)).toBe(value);
      }),
      { numRuns: 300 },
    );
  });

  it("gives back a multi-segment value with each segment's own '/' still encoded", () => {
    fc.assert(
      fc.property(fc.array(segment, { minLength: 1, maxLength: 4 }), (segments) => {
        const raw = segments.map(encodeURIComponent).join("/");
        expect(decodePathValue(raw, true)).toBe(segments.map((s) => s.replaceAll("/", "%2F")).join("/"));
      }),
      { numRuns: 300 },
    );
  });

  it("never throws on any text", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 12 }), fc.boolean(), (raw, multi) => {
        decodePathValue(raw, multi);
      }),
      { numRuns: 300 },
    );
  });
});

describe("createRouter", () => {
  const routes = fc.array(fc.tuple(fc.constantFrom("GET", "POST"), templateCase), { minLength: 1, maxLength: 5 }).map((list) =>
    list.map(([httpMethod, template], index): Route<number> => ({ httpMethod, template: parse(template), target: index })),
  );

  it("finds a route whose template matches the path, whenever one with the method does; else the allowed methods", () => {
    fc.assert(
      fc.property(routes, fc.constantFrom("GET", "POST", "PUT"), anyPath, (list, method, path) => {
        const found = createRouter(list).find(method, path);
        const segments = splitRequestPath(path);
        const matching = list.filter((route) => matchPathTemplate(route.template, segments) !== undefined);
        if (matching.some((route) => route.httpMethod === method)) {
          const route = found?.route;
          expect(route?.httpMethod).toBe(method);
          expect(found).toEqual({ route, values: matchPathTemplate(route!.template, segments) });
        } else if (matching.length > 0) {
          expect(found?.route).toBeUndefined();
          expect([...found!.allow!].sort()).toEqual([...new Set(matching.map((route) => route.httpMethod))].sort());
        } else {
          expect(found).toBeUndefined();
        }
      }),
      { numRuns: 500 },
    );
  });

  it("finds a route whose `**` matches nothing, its verb on the first segment", () => {
    const route: Route<number> = { httpMethod: "GET", template: parsePathTemplate("/b/{rest=**}:get").value!, target: 0 };
    expect(createRouter([route]).find("GET", "/b:get")).toEqual({ route, values: [""] });
  });

  it("finds the same route for a percent-encoded path", () => {
    fc.assert(
      fc.property(routes, fc.constantFrom("GET", "POST"), nearPath, fc.array(fc.nat(), { minLength: 1, maxLength: 4 }), (list, method, path, positions) => {
        const router = createRouter(list);
        // Only the verbs the routes share are left unencoded, so every route sees the same verb.
        const stripped = path.endsWith("/") ? path.slice(0, -1) : path;
        const verb = stripped.endsWith(":get") ? "get" : stripped.endsWith(":x") ? "x" : undefined;
        const found = router.find(method, path);
        const encoded = router.find(method, percentEncodeSome(path, positions, verb));
        expect(encoded?.route).toBe(found?.route);
        expect(encoded?.allow).toEqual(found?.allow);
      }),
      { numRuns: 500 },
    );
  });
});
