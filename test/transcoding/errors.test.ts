import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HttpStatusHint, httpStatusOf } from "../../src/transcoding/http-status.js";
import { startLibraryServer, type LibraryServer } from "./library-server.js";

describe("httpStatusOf", () => {
  it.each([
    [Code.Canceled, 499],
    [Code.Unknown, 500],
    [Code.InvalidArgument, 400],
    [Code.DeadlineExceeded, 504],
    [Code.NotFound, 404],
    [Code.AlreadyExists, 409],
    [Code.PermissionDenied, 403],
    [Code.ResourceExhausted, 429],
    [Code.FailedPrecondition, 400],
    [Code.Aborted, 409],
    [Code.OutOfRange, 400],
    [Code.Unimplemented, 501],
    [Code.Internal, 500],
    [Code.Unavailable, 503],
    [Code.DataLoss, 500],
    [Code.Unauthenticated, 401],
  ])("maps code %s to %s", (code, status) => {
    expect(httpStatusOf(new ConnectError("x", code))).toBe(status);
  });

  it("prefers the status of an HttpStatusHint cause, and only of one", () => {
    const error = new ConnectError("too big", Code.ResourceExhausted, undefined, undefined, new HttpStatusHint("too big", 413));
    expect(httpStatusOf(error)).toBe(413);
    // A cause that merely looks like one is not taken: the hint is typed, not duck-typed.
    expect(httpStatusOf(new ConnectError("x", Code.Unavailable, undefined, undefined, { httpStatus: 502 }))).toBe(503);
  });
});

describe("REST errors", () => {
  let server: LibraryServer;
  beforeAll(async () => {
    server = await startLibraryServer({ maxBodyBytes: 1024 });
  });
  afterAll(() => server.close());

  async function expectError(res: Response, status: number, code: string, message?: string | RegExp) {
    expect(res.status).toBe(status);
    expect(res.headers.get("content-type")).toBe("application/json");
    const body = (await res.json()) as { code: string; message: string };
    expect(body.code).toBe(code);
    if (message !== undefined) expect(body.message).toMatch(message);
    return body;
  }

  it("invalid JSON is INVALID_ARGUMENT", async () => {
    const res = await fetch(`${server.baseUrl}/v1/shelves/s1/books`, { method: "POST", body: "{" });
    await expectError(res, 400, "invalid_argument", /^request body is not valid JSON/);
  });

  it("an unknown field in the body is INVALID_ARGUMENT", async () => {
    const res = await fetch(`${server.baseUrl}/v1/shelves/s1/books`, { method: "POST", body: '{"nope":1}' });
    await expectError(res, 400, "invalid_argument", /nope/);
  });

  it.each(["[1]", "3", '"text"', "null", "", "true"])("a Struct body %j is INVALID_ARGUMENT", async (body) => {
    const res = await fetch(`${server.baseUrl}/v1/shelves/s1/annotations/`, { method: "POST", body });
    await expectError(res, 400, "invalid_argument", "request body must be a JSON object");
  });

  it("a body over the limit by content-length is 413", async () => {
    const res = await fetch(`${server.baseUrl}/v1/shelves/s1/annotations/`, {
      method: "POST",
      body: JSON.stringify({ text: "x".repeat(2048) }),
    });
    await expectError(res, 413, "resource_exhausted", /larger than 1024 bytes/);
  });

  it("a chunked body over the limit is 413", async () => {
    const chunk = new TextEncoder().encode(" ".repeat(512));
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 4) controller.enqueue(chunk);
        else controller.close();
      },
    });
    const res = await fetch(`${server.baseUrl}/v1/shelves/s1/annotations/`, {
      method: "POST",
      body,
      duplex: "half",
    } as RequestInit);
    await expectError(res, 413, "resource_exhausted");
  });

  it("the connection stays usable after a 413", async () => {
    const big = await fetch(`${server.baseUrl}/v1/shelves/s1/annotations/`, { method: "POST", body: "x".repeat(4096) });
    expect(big.status).toBe(413);
    await big.arrayBuffer();
    const res = await fetch(`${server.baseUrl}/v1/shelves/s1/annotations/`, { method: "POST", body: "{}" });
    expect(res.status).toBe(200);
  });

  it.each([
    ["/v1/shelves/s1/books/1?shelf=s2", /bound by the path/],
    ["/v1/shelves/s1/books/1?view=a&view=b", /more than once/],
    ["/v1/shelves/s1/books/1?filter.minYear=abc", /not an integer/],
    ["/v1/shelves/s1/books/1?filter.minYear=3000000000", /out of range/],
    ["/v1/shelves/s1/books/1?filter.genre=GENRE_NOPE", /not a value of/],
    ["/v1/shelves/s1/books/1?include_drafts=yes", /not a bool/],
    ["/v1/shelves/s1/books/x", /path variable "book_id"/],
    ["/v1/shelves/s1%ZZ/books/1", /percent-encoded/],
  ])("%s is INVALID_ARGUMENT", async (path, message) => {
    const res = await fetch(server.baseUrl + path);
    await expectError(res, 400, "invalid_argument", message);
  });

  it("ignores query parameters that bind no field, as grpc-gateway does", async () => {
    for (const path of ["/v1/shelves/s1/books/1?nope=1", "/v1/shelves/s1/books/1?filter.nope=1&api-version=2024-06-01"]) {
      const res = await fetch(server.baseUrl + path);
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }
    const res = await fetch(`${server.baseUrl}/v1/shelves/s1/books?shelf=x`, { method: "POST", body: "{}" });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
  });

  describe("with rejectUnknownQueryParameters", () => {
    let strict: LibraryServer;
    beforeAll(async () => {
      strict = await startLibraryServer({ rejectUnknownQueryParameters: true });
    });
    afterAll(() => strict.close());

    it.each([
      ["/v1/shelves/s1/books/1?nope=1", /unknown query parameter "nope"/],
      ["/v1/shelves/s1/books/1?filter.nope=1", /unknown query parameter "filter.nope"/],
    ])("%s is INVALID_ARGUMENT", async (path, message) => {
      await expectError(await fetch(strict.baseUrl + path), 400, "invalid_argument", message);
    });

    it("refuses query parameters when the body binds every field", async () => {
      const res = await fetch(`${strict.baseUrl}/v1/shelves/s1/books?shelf=x`, { method: "POST", body: "{}" });
      await expectError(res, 400, "invalid_argument", /unknown query parameter "shelf"/);
    });
  });

  it("a query parameter for the body field is INVALID_ARGUMENT", async () => {
    const res = await fetch(`${server.baseUrl}/v1/notes/n1?note.text=x`, { method: "PATCH", body: "{}" });
    await expectError(res, 400, "invalid_argument", /bound by the request body/);
  });

  it("a ConnectError from the implementation maps to its status", async () => {
    const res = await fetch(`${server.baseUrl}/v1/files/missing:read`);
    await expectError(res, 404, "not_found", "no such file");
  });

  it("any other error is 500 without its message or a stack trace", async () => {
    const res = await fetch(`${server.baseUrl}/v1/files/bug:read`);
    const body = await expectError(res, 500, "internal", "internal error");
    expect(JSON.stringify(body)).not.toMatch(/secret|\/srv|\.ts|at /);
  });

  it("a method without an implementation is UNIMPLEMENTED", async () => {
    const bare = await startLibraryServer({ impl: { deleteShelf: undefined } });
    try {
      const res = await fetch(`${bare.baseUrl}/v1/shelves/s1`, { method: "DELETE" });
      await expectError(res, 501, "unimplemented");
    } finally {
      await bare.close();
    }
  });
});

describe("writeError", () => {
  it("builds the error response, with the handler context's response headers", async () => {
    const server = await startLibraryServer({
      impl: {
        getBook(_req, ctx) {
          ctx.responseHeader.set("x-request-key", "k1");
          throw new ConnectError("slow down", Code.ResourceExhausted, { "retry-after": "7" });
        },
      },
      writeError: (error, { responseHeader, exchange }) => ({
        status: httpStatusOf(error),
        headers: { "x-writer": "custom" },
        body: JSON.stringify({ error: { description: error.rawMessage, key: responseHeader.get("x-request-key"), path: exchange?.path } }),
      }),
    });
    try {
      const res = await fetch(`${server.baseUrl}/v1/shelves/s1/books/1`);
      expect(res.status).toBe(429);
      expect(res.headers.get("x-writer")).toBe("custom");
      expect(res.headers.get("x-request-key")).toBe("k1");
      expect(res.headers.get("retry-after")).toBe("7");
      expect(await res.json()).toEqual({ error: { description: "slow down", key: "k1", path: "/v1/shelves/s1/books/1" } });
    } finally {
      await server.close();
    }
  });
});
