import { describe, expect, it } from "vitest";
import {
  decodePathValue,
  matchPathTemplate,
  parsePathTemplate,
  splitRequestPath,
} from "../../src/transcoding/path-template.js";

describe("parsePathTemplate", () => {
  it.each([
    ["/v1/shelves", ["v1", "shelves"], [], undefined],
    ["/v1/shelves/", ["v1", "shelves"], [], undefined],
    ["/", [], [], undefined],
    ["/v1/shelves/{shelf}", ["v1", "shelves", "*"], [["shelf", 2, 3, false]], undefined],
    ["/v1/{shelf=*}/books/{book_id}", ["v1", "*", "books", "*"], [["shelf", 1, 2, false], ["book_id", 3, 4, false]], undefined],
    ["/v1/{name=shelves/*/books/*}", ["v1", "shelves", "*", "books", "*"], [["name", 1, 5, true]], undefined],
    ["/v1/{path=files/**}:read", ["v1", "files", "**"], [["path", 1, 3, true]], "read"],
    ["/v1/{path=**}", ["v1", "**"], [["path", 1, 2, true]], undefined],
    ["/v1/{note.name=notes/*}", ["v1", "notes", "*"], [["note.name", 1, 3, true]], undefined],
    ["/v1/books:create", ["v1", "books"], [], "create"],
    ["/v1/*/books/**", ["v1", "*", "books", "**"], [], undefined],
    ["/api/v1/prompts/passthrough/{provider_name}/", ["api", "v1", "prompts", "passthrough", "*"], [["provider_name", 4, 5, false]], undefined],
  ])("parses %s", (source, segments, variables, verb) => {
    const { value, error } = parsePathTemplate(source);
    expect(error).toBeUndefined();
    expect(value!.segments.map((s) => (s.kind === "literal" ? s.value : s.kind === "single" ? "*" : "**"))).toEqual(segments);
    expect(value!.variables.map((v) => [v.fieldPath.join("."), v.start, v.end, v.multiSegment])).toEqual(variables);
    expect(value!.verb).toBe(verb);
  });

  it.each([
    ["v1/shelves", "must start with"],
    ["", "must start with"],
    ["/v1//shelves", "invalid segment"],
    ["/v1/shelves//", "invalid segment"],
    ["/v1/{shelf", "unclosed"],
    ["/v1/{}", "invalid field path"],
    ["/v1/{1abc}", "invalid field path"],
    ["/v1/{a..b}", "invalid field path"],
    ["/v1/{a=}", "invalid segment"],
    ["/v1/{a={b}}", "invalid"],
    ["/v1/**/books", "must be the last segment"],
    ["/v1/{a=**}/{b}", "must be the last segment"],
    ["/v1/{a}/{a}", "binds \"a\" twice"],
    ["/v1/books:", "invalid verb"],
    ["/v1/b{a}c", "invalid"],
    ["/v1/a=b", "invalid segment"],
  ])("rejects %j", (source, message) => {
    const { value, error } = parsePathTemplate(source);
    expect(value).toBeUndefined();
    expect(error).toContain(message);
  });
});

describe("matchPathTemplate", () => {
  it.each([
    ["/v1/shelves/{shelf}", "/v1/shelves/s1", ["s1"]],
    ["/v1/shelves/{shelf}", "/v1/shelves/s1/", ["s1"]],
    ["/v1/shelves/{shelf}/", "/v1/shelves/s1", ["s1"]],
    ["/v1/shelves/{shelf}", "/v1/shelves/a%2Fb", ["a%2Fb"]],
    ["/v1/shelves/{shelf}", "/v1/shelves", undefined],
    ["/v1/shelves/{shelf}", "/v1/shelves/s1/books", undefined],
    ["/v1/shelves/{shelf}", "/v1/shelves/", undefined],
    ["/v1/shelves/{shelf}", "/v2/shelves/s1", undefined],
    ["/v1/shelves/{shelf}", "/v1/sh%65lves/s1", ["s1"]],
    ["/v1/{name=shelves/*}", "/v1/shelves/s1", ["shelves/s1"]],
    ["/v1/{name=shelves/*}", "/v1/books/s1", undefined],
    ["/v1/{path=files/**}:read", "/v1/files/a/b/c:read", ["files/a/b/c"]],
    ["/v1/{path=files/**}:read", "/v1/files:read", ["files"]],
    ["/v1/{path=files/**}:read", "/v1/files/a/b/c", undefined],
    ["/v1/{path=files/**}:read", "/v1/files/a:write", undefined],
    ["/v1/books:create", "/v1/books:create", []],
    ["/v1/books:create", "/v1/books:create/", []],
    ["/v1/books:create", "/v1/books", undefined],
    ["/v1/books:create", "/v1/xbooks:create", undefined],
    ["/v1/{name=*}:undelete", "/v1/n1:undelete", ["n1"]],
    ["/v1/{name=*}:undelete", "/v1/:undelete", undefined],
    ["/v1/*/books/{id}", "/v1/anything/books/7", ["7"]],
    ["/", "/", []],
    ["/", "/a", undefined],
  ])("%s matches %s: %j", (source, path, expected) => {
    const template = parsePathTemplate(source).value!;
    expect(matchPathTemplate(template, splitRequestPath(path))).toEqual(expected);
  });
});

describe("decodePathValue", () => {
  it.each([
    ["abc", false, "abc"],
    ["a%20b", false, "a b"],
    ["a%2Fb", false, "a/b"],
    ["files/a%2Fb/c%20d", true, "files/a%2Fb/c d"],
    ["files/a%2fb", true, "files/a%2Fb"],
    ["bad%zz", false, undefined],
    ["files/bad%E0", true, undefined],
  ])("decodes %s (multi-segment %s) to %s", (raw, multi, expected) => {
    expect(decodePathValue(raw, multi)).toBe(expected);
  });
});
