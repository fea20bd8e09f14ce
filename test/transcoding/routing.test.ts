import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { Genre } from "../gen/transcodingtest/v1/library_pb.js";
import { createTranscoder } from "../../src/transcoding/transcoder.js";
import { LibraryService } from "../gen/transcodingtest/v1/library_pb.js";
import { JournalService } from "../../src/gen/smarter/prompt/v1/journal_pb.js";
import { PassthroughService } from "../../src/gen/smarter/prompt/v1/passthrough_pb.js";
import { startLibraryServer, type LibraryServer } from "./library-server.js";

let server: LibraryServer;
beforeAll(async () => {
  server = await startLibraryServer();
});
afterAll(() => server.close());
beforeEach(() => {
  server.received.length = 0;
  server.handled.length = 0;
});

function call(path: string, init?: RequestInit) {
  return fetch(server.baseUrl + path, init);
}

function lastRequest(): Record<string, unknown> {
  return server.received[server.received.length - 1].request as Record<string, unknown>;
}

describe("routes", () => {
  it("are read from the google.api.http options, one per binding, streaming methods left out", () => {
    expect(server.transcoder.routes.map((r) => `${r.httpMethod} ${r.template} ${r.method.name}`)).toEqual([
      "GET /v1/shelves/{shelf}/books/{book_id} GetBook",
      "POST /v1/shelves/{shelf}/books CreateBook",
      "PUT /v1/books:create CreateBook",
      "GET /v1/{path=files/**}:read ReadFile",
      "PATCH /v1/{note.name=notes/*} UpdateNote",
      "DELETE /v1/shelves/{shelf} DeleteShelf",
      "PURGE /v1/shelves/{shelf}:purge DeleteShelf",
      "POST /v1/shelves/{shelf}/annotations/ AnnotateShelf",
    ]);
  });

  it("of the gateway's own service are its two documented bindings and the provider list's", () => {
    const transcoder = createTranscoder({ services: [{ service: PassthroughService, impl: {} }] });
    expect(transcoder.routes.map((r) => `${r.httpMethod} ${r.template} ${r.method.name}`)).toEqual([
      "POST /api/v1/prompts/passthrough/{provider_name}/ Passthrough",
      "POST /api/v1/prompts/passthrough/{provider_name}/chat/completions Passthrough",
      "GET /api/v1/prompts/providers ListProviders",
    ]);
  });

  it("of the journal service are its two GET bindings", () => {
    const transcoder = createTranscoder({ services: [{ service: JournalService, impl: {} }] });
    expect(transcoder.routes.map((r) => `${r.httpMethod} ${r.template} ${r.method.name}`)).toEqual([
      "GET /api/v1/prompts/journal/{journal_key} GetJournalEntry",
      "GET /api/v1/prompts/journal ListJournalEntries",
    ]);
  });

  it("reject two bindings with the same method and path", () => {
    const services = [
      { service: LibraryService, impl: {} },
      { service: LibraryService, impl: {} },
    ];
    expect(() => createTranscoder({ services })).toThrow(/same route/);
  });
});

describe("GET with path variables and query parameters", () => {
  it("converts path variables to the field types", async () => {
    const res = await call("/v1/shelves/s1/books/9007199254740993");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(await res.json()).toEqual({ shelf: "s1", bookId: "9007199254740993" });
    expect(lastRequest()).toMatchObject({ shelf: "s1", bookId: 9007199254740993n });
  });

  it("sets scalar, repeated, nested, int64, enum and wrapper fields from the query", async () => {
    const query = [
      "view=full",
      "tags=a",
      "tags=b%20c",
      "filter.author=Ann",
      "filter.minYear=1990",
      "filter.max_pages=9007199254740993",
      "filter.genre=GENRE_HISTORY",
      "include_drafts=true",
      "pageSize=5",
    ].join("&");
    const res = await call(`/v1/shelves/s1/books/2?${query}`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ shelf: "s1", bookId: "2", title: "full", tags: ["a", "b c"] });
    expect(lastRequest()).toMatchObject({
      shelf: "s1",
      bookId: 2n,
      view: "full",
      tags: ["a", "b c"],
      filter: { author: "Ann", minYear: 1990, maxPages: 9007199254740993n, genre: Genre.HISTORY },
      includeDrafts: true,
      pageSize: 5,
    });
  });

  it("accepts an enum by number", async () => {
    await call("/v1/shelves/s1/books/2?filter.genre=1");
    expect(lastRequest()).toMatchObject({ filter: { genre: Genre.FICTION } });
  });

  it("percent-decodes a single-segment variable, %2F included", async () => {
    const res = await call("/v1/shelves/a%2Fb%20c/books/1");
    expect(res.status).toBe(200);
    expect(lastRequest()).toMatchObject({ shelf: "a/b c" });
  });

  it.each(["/v1/shelves/s1/books/1/", "/v1/shelves/s1/books/1"])("accepts %s with or without a trailing slash", async (path) => {
    expect((await call(path)).status).toBe(200);
  });
});

describe("a ** variable with a custom verb", () => {
  it.each([
    ["/v1/files/a/b.txt:read", "files/a/b.txt"],
    ["/v1/files:read", "files"],
    ["/v1/files/a%2Fb/c%20d:read", "files/a%2Fb/c d"],
  ])("routes %s", async (path, expected) => {
    const res = await call(path);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ path: expected });
  });
});

describe("body", () => {
  it('"*" fills the request message from JSON, path variables win', async () => {
    const res = await call("/v1/shelves/s1/books", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ shelf: "ignored", book: { title: "T", bookId: "7", tags: ["x"], extra: { a: [1, null] } } }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ shelf: "s1", bookId: "7", title: "T", tags: ["x"], extra: { a: [1, null] } });
    expect(lastRequest()).toMatchObject({ shelf: "s1", book: { title: "T", bookId: 7n } });
  });

  it("an additional binding with a custom verb routes to the same method", async () => {
    const res = await call("/v1/books:create", { method: "PUT", body: JSON.stringify({ shelf: "s2", book: { title: "U" } }) });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ shelf: "s2", title: "U" });
    expect(server.received[0].method).toBe("CreateBook");
  });

  it("an empty body for \"*\" is an empty message", async () => {
    const res = await call("/v1/shelves/s3/books", { method: "POST" });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ shelf: "s3" });
  });

  it("a named body field, a nested path variable and response_body", async () => {
    const res = await call("/v1/notes/n1", { method: "PATCH", body: JSON.stringify({ text: "hello", name: "overridden" }) });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ name: "notes/n1", text: "hello" });
    expect(lastRequest()).toMatchObject({ note: { name: "notes/n1", text: "hello" }, validateOnly: false });
  });

  it("query parameters fill the fields that neither path nor body bind", async () => {
    await call("/v1/notes/n1?validate_only=true", { method: "PATCH", body: "{}" });
    expect(lastRequest()).toMatchObject({ validateOnly: true, note: { name: "notes/n1" } });
  });

  it("a google.protobuf.Struct body field gets the parsed JSON object as is", async () => {
    const payload = { model: "m", messages: [{ role: "user", content: "hi" }], n: 1.5, flag: null, nested: { a: [true, "x"] } };
    const res = await call("/v1/shelves/s1/annotations/", { method: "POST", body: JSON.stringify(payload) });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual(payload);
    expect(lastRequest()).toMatchObject({ shelf: "s1" });
    expect(lastRequest().payload).toEqual(payload);
  });

  it("a template with a trailing slash also matches without it", async () => {
    const res = await call("/v1/shelves/s1/annotations", { method: "POST", body: "{}" });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({});
  });
});

describe("response JSON", () => {
  it("omits fields at their default, as proto3 JSON does; emitDefaults writes them, as grpc-gateway does", async () => {
    expect(await (await call("/v1/shelves/s1/books/0")).json()).toEqual({ shelf: "s1" });
    const emitting = await startLibraryServer({ emitDefaults: true });
    try {
      const res = await fetch(`${emitting.baseUrl}/v1/shelves/s1/books/0`);
      // An unset message field (extra) stays absent: only implicit defaults are written.
      expect(await res.json()).toEqual({ shelf: "s1", bookId: "0", title: "", tags: [], public: false });
    } finally {
      await emitting.close();
    }
  });
});

describe("methods", () => {
  it("DELETE without a body", async () => {
    const res = await call("/v1/shelves/old", { method: "DELETE" });
    expect(await res.json()).toEqual({ shelf: "old", deleted: true });
  });

  it("a custom method kind", async () => {
    const res = await call("/v1/shelves/old:purge", { method: "PURGE" });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ shelf: "old", deleted: true });
  });

  it.each([
    ["GET", "/v1/shelves/s1", "DELETE"],
    ["POST", "/v1/shelves/s1/books/1", "GET"],
    ["GET", "/v1/shelves/s1/books", "POST"],
  ])("%s %s is 405 with Allow: %s", async (method, path, allow) => {
    const res = await call(path, { method });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe(allow);
    expect(await res.json()).toMatchObject({ code: "unimplemented" });
    expect(server.handled).toEqual([true]);
    expect(server.received).toEqual([]);
  });

  it.each(["/", "/v2/shelves/s1", "/v1/shelves/s1/books/1/extra", "/v1/watch/s1", "/v1/files/a"])(
    "no route for %s: handle() returns false",
    async (path) => {
      const res = await call(path);
      expect(res.status).toBe(404);
      expect(server.handled).toEqual([false]);
    },
  );
});
