import { connect, createServer, type ClientHttp2Session, type Http2Server } from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { afterEach, describe, expect, it } from "vitest";
import { kHttpExchange, type HttpExchange } from "../../src/transcoding/http-exchange.js";
import { createTranscoder } from "../../src/transcoding/transcoder.js";
import { LibraryService } from "../gen/transcodingtest/v1/library_pb.js";
import { echoLibrary, startLibraryServer, type LibraryImpl, type LibraryServer } from "./library-server.js";

let server: LibraryServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

function deferred<T>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

function exchangeOf(ctx: HandlerContext): HttpExchange {
  const exchange = ctx.values.get(kHttpExchange);
  if (exchange === undefined) throw new Error("no HttpExchange in the handler context");
  return exchange;
}

describe("interceptors", () => {
  it("run around the implementation, see the request message and set response headers", async () => {
    const seen: unknown[] = [];
    const interceptor: Interceptor = (next) => async (req) => {
      seen.push({
        method: req.method.name,
        message: req.message,
        client: req.header.get("x-client"),
        exchange: req.contextValues.get(kHttpExchange)?.path,
      });
      const res = await next(req);
      res.header.set("x-intercepted", "yes");
      return res;
    };
    server = await startLibraryServer({ interceptors: [interceptor] });
    const res = await fetch(`${server.baseUrl}/v1/shelves/s1/books/3?view=v`, { headers: { "x-client": "c1" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-intercepted")).toBe("yes");
    expect(seen).toEqual([
      {
        method: "GetBook",
        message: expect.objectContaining({ shelf: "s1", bookId: 3n, view: "v" }),
        client: "c1",
        exchange: "/v1/shelves/s1/books/3",
      },
    ]);
  });

  it("an interceptor's ConnectError is the response", async () => {
    const deny: Interceptor = () => () => {
      throw new ConnectError("missing credentials", Code.Unauthenticated);
    };
    server = await startLibraryServer({ interceptors: [deny] });
    const res = await fetch(`${server.baseUrl}/v1/shelves/s1`, { method: "DELETE" });
    expect(res.status).toBe(401);
    expect(await res.json()).toEqual({ code: "unauthenticated", message: "missing credentials" });
    expect(server.received).toEqual([]);
  });
});

describe("handler context", () => {
  it("carries the REST call's protocol, method, URL and headers", async () => {
    server = await startLibraryServer();
    await fetch(`${server.baseUrl}/v1/shelves/s1?force=true`, { method: "DELETE", headers: { authorization: "Bearer t" } });
    const { context, request } = server.received[0];
    expect(request).toMatchObject({ shelf: "s1", force: true });
    expect(context.protocolName).toBe("rest");
    expect(context.requestMethod).toBe("DELETE");
    expect(context.url).toBe(`${server.baseUrl}/v1/shelves/s1?force=true`);
    expect(context.requestHeader.get("authorization")).toBe("Bearer t");
    expect(context.method.name).toBe("DeleteShelf");
    expect(context.signal.aborted).toBe(true); // aborted once the call is over, as in connect-node
  });

  it("has a deadline from maxTimeoutMs", async () => {
    server = await startLibraryServer({
      maxTimeoutMs: 50,
      impl: {
        async getBook(_req, ctx) {
          expect(ctx.timeoutMs()).toBeGreaterThan(0);
          await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
          throw ConnectError.from(ctx.signal.reason);
        },
      },
    });
    const res = await fetch(`${server.baseUrl}/v1/shelves/s1/books/1`);
    expect(res.status).toBe(504);
    expect(await res.json()).toMatchObject({ code: "deadline_exceeded" });
  });

  it("is aborted by the shutdown signal", async () => {
    const shutdown = new AbortController();
    const started = deferred<void>();
    server = await startLibraryServer({
      shutdownSignal: shutdown.signal,
      impl: {
        async getBook(_req, ctx) {
          started.resolve();
          await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve));
          throw new ConnectError("shutting down", Code.Unavailable);
        },
      },
    });
    const pending = fetch(`${server.baseUrl}/v1/shelves/s1/books/1`);
    await started.promise;
    shutdown.abort();
    expect((await pending).status).toBe(503);
  });
});

describe("HttpExchange", () => {
  it("gives the request body exactly as received", async () => {
    const exchanges: { httpMethod: string; path: string; body: string }[] = [];
    const record = (ctx: HandlerContext) => {
      const exchange = exchangeOf(ctx);
      exchanges.push({ httpMethod: exchange.httpMethod, path: exchange.path, body: Buffer.from(exchange.requestBody).toString() });
    };
    server = await startLibraryServer({
      impl: {
        annotateShelf(req, ctx) {
          record(ctx);
          return { payload: req.payload };
        },
        getBook(_req, ctx) {
          record(ctx);
          return {};
        },
      },
    });
    const body = '{ "b": 1,\n  "a": [ 2 ] }';
    await fetch(`${server.baseUrl}/v1/shelves/s1/annotations/?`, { method: "POST", body });
    await fetch(`${server.baseUrl}/v1/shelves/s1/books/1?view=x`);
    expect(exchanges).toEqual([
      { httpMethod: "POST", path: "/v1/shelves/s1/annotations/", body },
      { httpMethod: "GET", path: "/v1/shelves/s1/books/1", body: "" },
    ]);
  });

  it("respondRaw answers with raw bytes and the context's response headers", async () => {
    server = await startLibraryServer({
      impl: {
        readFile(_req, ctx) {
          ctx.responseHeader.set("x-upstream-status", "200");
          exchangeOf(ctx).respondRaw(new TextEncoder().encode("raw é"), "text/plain; charset=utf-8");
          return {};
        },
      },
    });
    const res = await fetch(`${server.baseUrl}/v1/files/raw:read`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/plain; charset=utf-8");
    expect(res.headers.get("content-length")).toBe("6");
    expect(res.headers.get("x-upstream-status")).toBe("200");
    expect(await res.text()).toBe("raw é");
  });

  it("stream writes headers at once, then the chunks as they come", async () => {
    const release = deferred<void>();
    server = await startLibraryServer({
      impl: {
        async readFile(_req, ctx) {
          ctx.responseHeader.set("x-stream", "yes");
          await exchangeOf(ctx).stream(
            "text/event-stream",
            (async function* () {
              yield "data: 1\n\n";
              await release.promise;
              yield new TextEncoder().encode("data: 2\n\n");
            })(),
          );
          return {};
        },
      },
    });
    const res = await fetch(`${server.baseUrl}/v1/files/s:read`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    expect(res.headers.get("x-stream")).toBe("yes");
    const reader = res.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe("data: 1\n\n");
    release.resolve();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe("data: 2\n\n");
    expect((await reader.read()).done).toBe(true);
  });

  it("stream honours backpressure", async () => {
    const chunk = new Uint8Array(256 * 1024).fill(97);
    const total = 256;
    let produced = 0;
    server = await startLibraryServer({
      impl: {
        async readFile(_req, ctx) {
          await exchangeOf(ctx).stream(
            "application/octet-stream",
            (async function* () {
              for (; produced < total; produced++) yield chunk;
            })(),
          );
          return {};
        },
      },
    });
    const res = await fetch(`${server.baseUrl}/v1/files/big:read`);
    const reader = res.body!.getReader();
    let received = (await reader.read()).value!.byteLength;
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(produced).toBeLessThan(total / 2);
    for (let r = await reader.read(); !r.done; r = await reader.read()) received += r.value.byteLength;
    expect(received).toBe(total * chunk.byteLength);
    expect(produced).toBe(total);
  });

  it("when the caller goes away, the stream stops, the iterator is returned and the context signal aborts", async () => {
    const done = deferred<{ error: unknown; signalAborted: boolean; finalized: boolean }>();
    let finalized = false;
    server = await startLibraryServer({
      impl: {
        async readFile(_req, ctx) {
          const chunks = (async function* () {
            try {
              for (;;) {
                yield "tick\n";
                await new Promise((resolve) => setTimeout(resolve, 10));
              }
            } finally {
              finalized = true;
            }
          })();
          try {
            await exchangeOf(ctx).stream("text/plain", chunks);
            done.resolve({ error: undefined, signalAborted: ctx.signal.aborted, finalized });
          } catch (error) {
            await new Promise((resolve) => setTimeout(resolve, 20));
            done.resolve({ error, signalAborted: ctx.signal.aborted, finalized });
            throw error;
          }
          return {};
        },
      },
    });
    const abort = new AbortController();
    const res = await fetch(`${server.baseUrl}/v1/files/ticks:read`, { signal: abort.signal });
    const reader = res.body!.getReader();
    await reader.read();
    abort.abort();
    const outcome = await done.promise;
    expect(outcome.error).toBeInstanceOf(ConnectError);
    expect((outcome.error as ConnectError).code).toBe(Code.Canceled);
    expect(outcome.signalAborted).toBe(true);
    expect(outcome.finalized).toBe(true);
  });

  it("when the caller goes away while the next chunk is pending, stream rejects at once", async () => {
    const done = deferred<{ error: unknown; after: number }>();
    let abortedAt = 0;
    server = await startLibraryServer({
      impl: {
        async readFile(_req, ctx) {
          const chunks = (async function* () {
            yield "first\n";
            await new Promise(() => {}); // a source that never yields again
          })();
          try {
            await exchangeOf(ctx).stream("text/plain", chunks);
            done.resolve({ error: undefined, after: Date.now() - abortedAt });
          } catch (error) {
            done.resolve({ error, after: Date.now() - abortedAt });
            throw error;
          }
          return {};
        },
      },
    });
    const abort = new AbortController();
    const res = await fetch(`${server.baseUrl}/v1/files/hang:read`, { signal: abort.signal });
    const reader = res.body!.getReader();
    await reader.read();
    abortedAt = Date.now();
    abort.abort();
    const outcome = await done.promise;
    expect((outcome.error as ConnectError).code).toBe(Code.Canceled);
    expect(outcome.after).toBeLessThan(1000);
  });

  it("when the chunks throw after the headers, the response ends and stream rejects", async () => {
    const outcome = deferred<unknown>();
    server = await startLibraryServer({
      impl: {
        async readFile(_req, ctx) {
          const chunks = (async function* () {
            yield "partial";
            throw new Error("upstream broke");
          })();
          await exchangeOf(ctx).stream("text/plain", chunks).catch((e: unknown) => outcome.resolve(e));
          return {};
        },
      },
    });
    const res = await fetch(`${server.baseUrl}/v1/files/broken:read`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("partial");
    expect(await outcome.promise).toMatchObject({ message: "upstream broke" });
  });
});

describe("HTTP/2", () => {
  let h2server: Http2Server | undefined;
  let session: ClientHttp2Session | undefined;
  afterEach(async () => {
    session?.close();
    await new Promise((resolve) => (h2server ? h2server.close(resolve) : resolve(undefined)));
  });

  function request(path: string, method: string, body?: string) {
    return new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
      const stream = session!.request({ ":path": path, ":method": method });
      let headers: Record<string, unknown> = {};
      let data = "";
      stream.on("response", (h) => (headers = h));
      stream.setEncoding("utf8");
      stream.on("data", (c: string) => (data += c));
      stream.on("end", () => resolve({ status: Number(headers[":status"]), headers, body: data }));
      stream.on("error", reject);
      stream.end(body);
    });
  }

  it("serves unary calls and streams", async () => {
    const impl: LibraryImpl = {
      ...echoLibrary([]),
      async readFile(_req, ctx) {
        await exchangeOf(ctx).stream("text/plain", (async function* () {
          yield "a";
          yield "b";
        })());
        return {};
      },
    };
    const transcoder = createTranscoder({ services: [{ service: LibraryService, impl }] });
    h2server = createServer((req, res) => {
      if (!transcoder.handle(req, res)) {
        res.statusCode = 404;
        res.end();
      }
    });
    await new Promise<void>((resolve) => h2server!.listen(0, "127.0.0.1", resolve));
    session = connect(`http://127.0.0.1:${(h2server.address() as AddressInfo).port}`);

    const unary = await request("/v1/shelves/s1/annotations/", "POST", '{"k":"v"}');
    expect(unary.status).toBe(200);
    expect(unary.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(unary.body)).toEqual({ k: "v" });

    const streamed = await request("/v1/files/x:read", "GET");
    expect(streamed).toMatchObject({ status: 200, body: "ab" });

    expect((await request("/v1/shelves/s1", "GET")).status).toBe(405);
    expect((await request("/nothing", "GET")).status).toBe(404);
  });
});
