import http from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { gunzipSync, gzipSync } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, createClient, type Interceptor } from "@connectrpc/connect";
import { compressionGzip, connectNodeAdapter, createConnectTransport } from "@connectrpc/connect-node";
import { request as undiciRequest } from "undici";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import { PassthroughRequestSchema, PassthroughService } from "../../src/gen/smarter/prompt/v1/passthrough_pb.js";
import { createLogger } from "../../src/logging/logger.js";
import { createProviderRegistry } from "../../src/providers/registry.js";
import { createUpstreamClient, type UpstreamClient } from "../../src/providers/upstream.js";
import { createConnectUnaryHandler } from "../../src/server/connect-unary.js";
import { createPassthroughService } from "../../src/service/passthrough-service.js";
import { completion, delay, errorBody, json, startFakeProvider, type FakeProvider } from "../support/fake-provider.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";
import { NO_CACHE } from "../support/no-cache.js";

// Connect unary POST takes a fast path (src/server/connect-unary.ts). It must answer exactly as
// connect-node does: the same service implementation and interceptors are served both ways, and
// every response is compared, status, headers and body.
let provider: FakeProvider;
let upstream: UpstreamClient;
const servers: http.Server[] = [];
let fastUrl: string;
let referenceUrl: string;

/** Adds a response header and a trailer to every successful call, to show both are carried. */
const tagging: Interceptor = (next) => async (req) => {
  const res = await next(req);
  res.header.set("x-test", "header");
  res.trailer.set("x-test", "trailer");
  return res;
};

const READ_MAX_BYTES = 64 * 1024;

async function listen(handler: http.RequestListener): Promise<string> {
  const server = http.createServer(handler);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

beforeAll(async () => {
  provider = await startFakeProvider();
  const config = parseConfig({ providers: [{ name: "local", baseUrl: provider.url, retries: 0 }] });
  upstream = createUpstreamClient(config.upstream);
  const logger = createLogger({ level: "silent", destination: new Writable({ write: (_chunk, _encoding, done) => done() }) });
  const service = createPassthroughService({ providers: createProviderRegistry(config.providers, {}), upstream, logger, logging: { logPrompt: false } });
  const options = { interceptors: [tagging], readMaxBytes: READ_MAX_BYTES };
  const fastPath = createConnectUnaryHandler({ services: [{ service: PassthroughService, impl: service }], ...options });
  fastUrl = await listen((req, res) => {
    if (!fastPath(req, res)) res.writeHead(599).end("not taken by the fast path");
  });
  referenceUrl = await listen(connectNodeAdapter({ routes: (router) => router.service(PassthroughService, service), ...options }));
});
afterAll(async () => {
  for (const server of servers) server.close();
  await upstream?.close();
  await provider?.close();
});
afterEach(() => provider.clear());

const PATH = "/smarter.prompt.v1.PassthroughService/Passthrough";
const KEY = /[0-9a-f]{64}/g;

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

async function post(base: string, headers: Record<string, string>, body: Uint8Array | string): Promise<Answer> {
  const res = await undiciRequest(base + PATH, { method: "POST", headers, body });
  let bytes = Buffer.from(await res.body.arrayBuffer());
  if (res.headers["content-encoding"] === "gzip") bytes = gunzipSync(bytes);
  const kept: Record<string, string> = {};
  for (const [name, value] of Object.entries(res.headers)) {
    if (name === "date" || name === "connection" || name === "keep-alive") continue;
    // A gzip stream's length differs with the journal key inside; the decompressed bodies are compared.
    if (name === "content-length" && res.headers["content-encoding"] === "gzip") continue;
    kept[name] = String(value).replace(KEY, "<key>");
  }
  const binary = String(res.headers["content-type"]).includes("proto");
  return { status: res.statusCode, headers: kept, body: binary ? bytes.toString("base64") : bytes.toString().replace(KEY, "<key>") };
}

/** The same request to the fast path and to connect-node, each after the same provider behaviour. */
async function both(headers: Record<string, string>, body: Uint8Array | string, reply?: () => void) {
  reply?.();
  const fast = await post(fastUrl, headers, body);
  reply?.();
  const reference = await post(referenceUrl, headers, body);
  return { fast, reference };
}

const JSON_TYPE = { "content-type": "application/json" };
const chat = (body: unknown = { model: "m", messages: [{ role: "user", content: "hi" }] }) =>
  JSON.stringify({ providerName: "local", body });

describe("Connect unary: the fast path answers as connect-node does", () => {
  it("takes Connect unary POST, JSON and protobuf, and no other request", async () => {
    provider.reply(json(200, completion("m")));
    expect((await post(fastUrl, JSON_TYPE, chat())).status).toBe(200);
    const streaming = await post(fastUrl, { "content-type": "application/connect+json" }, chat());
    expect(streaming.status).toBe(599);
    const get = await undiciRequest(`${fastUrl}${PATH}?encoding=json&message=%7B%7D`);
    expect(get.statusCode).toBe(599);
    await get.body.dump();
  });

  it.each([
    ["JSON", JSON_TYPE],
    ["JSON with a charset", { "content-type": "application/json; charset=utf-8" }],
  ])("answers a %s call the same, with the interceptor's header and trailer", async (_name, headers) => {
    const { fast, reference } = await both(headers, chat(), () => provider.reply(json(200, completion("m"))));
    expect(fast.status).toBe(200);
    expect(fast.headers["trailer-x-test"]).toBe("trailer");
    expect(JSON.parse(fast.body).body.model).toBe("m");
    expect(fast).toEqual(reference);
  });

  it("answers a protobuf call the same", async () => {
    const message = toBinary(PassthroughRequestSchema, create(PassthroughRequestSchema, { providerName: "local", body: { model: "m" } }));
    provider.reply(json(200, completion("m")));
    const fast = await post(fastUrl, { "content-type": "application/proto" }, message);
    provider.reply(json(200, completion("m")));
    const reference = await post(referenceUrl, { "content-type": "application/proto" }, message);
    expect(fast.status).toBe(200);
    expect(fast.headers["content-type"]).toBe("application/proto");
    // The bodies differ only by the journal key inside; their lengths and the rest match.
    expect({ ...fast, body: fast.body.length }).toEqual({ ...reference, body: reference.body.length });
  });

  it.each([
    ["invalid JSON", JSON_TYPE, "{not json"],
    ["a body that is not a Struct", JSON_TYPE, JSON.stringify({ providerName: "local", body: [1] })],
    ["no body", JSON_TYPE, JSON.stringify({ providerName: "local" })],
    ["an unknown provider", JSON_TYPE, JSON.stringify({ providerName: "nope", body: {} })],
    ['"stream": true', JSON_TYPE, chat({ model: "m", stream: true })],
    ["an unreadable timeout", { ...JSON_TYPE, "connect-timeout-ms": "soon" }, chat()],
    ["an unsupported request encoding", { ...JSON_TYPE, "content-encoding": "zstd" }, chat()],
  ])("answers %s with the same error", async (_name, headers, body) => {
    const { fast, reference } = await both(headers, body);
    expect(fast.status).toBeGreaterThanOrEqual(400);
    expect(JSON.parse(fast.body).code).toBeTruthy();
    expect(fast).toEqual(reference);
    expect(provider.requests).toHaveLength(0);
  });

  it("relays a provider error with its Retry-After the same", async () => {
    const { fast, reference } = await both(JSON_TYPE, chat(), () =>
      provider.reply(json(429, errorBody("slow down", "rate_limit_error"), { "retry-after": "30" })),
    );
    expect(fast.status).toBe(429);
    expect(fast.headers["retry-after"]).toBe("30");
    expect(fast).toEqual(reference);
  });

  it("answers DEADLINE_EXCEEDED the same when connect-timeout-ms passes", async () => {
    const { fast, reference } = await both({ ...JSON_TYPE, "connect-timeout-ms": "100" }, chat(), () =>
      provider.reply(delay(1000, json(200, completion("m")))),
    );
    expect(JSON.parse(fast.body).code).toBe("deadline_exceeded");
    expect(fast).toEqual(reference);
  });

  it("reads a gzip request and gzips an answer of 1 KiB or more when accepted", async () => {
    const long = completion("m", "x".repeat(2000));
    const { fast, reference } = await both(
      { ...JSON_TYPE, "content-encoding": "gzip", "accept-encoding": "gzip" },
      gzipSync(chat()),
      () => provider.reply(json(200, long)),
    );
    expect(fast.headers["content-encoding"]).toBe("gzip");
    expect(JSON.parse(fast.body).body.choices).toEqual(long.choices);
    expect(fast).toEqual(reference);
  });

  it("refuses a request larger than readMaxBytes with RESOURCE_EXHAUSTED, as connect-node", async () => {
    const { fast, reference } = await both(JSON_TYPE, chat({ model: "m", padding: "x".repeat(READ_MAX_BYTES) }));
    expect(fast.status).toBe(reference.status);
    expect(JSON.parse(fast.body).code).toBe("resource_exhausted");
    expect(JSON.parse(reference.body).code).toBe("resource_exhausted");
    expect(provider.requests).toHaveLength(0);
  });
});

describe("Connect unary through the gateway, over HTTP/2, with connect-node's own client", () => {
  let gateway: TestGateway;
  beforeAll(async () => {
    gateway = await startTestGateway({ providers: [{ name: "local", baseUrl: provider.url, retries: 0 }] });
  });
  afterAll(async () => {
    await gateway?.close();
  });

  it.each([
    { name: "protobuf", useBinaryFormat: true },
    { name: "JSON", useBinaryFormat: false },
    { name: "gzip-compressed protobuf", useBinaryFormat: true, sendCompression: compressionGzip },
  ])("answers a $name call with the answer, the journal key and no-cache headers", async (options) => {
    provider.reply(json(200, completion("m", "x".repeat(2000))));
    const client = createClient(PassthroughService, createConnectTransport({ baseUrl: gateway.url, httpVersion: "2", ...options }));
    const headers: Record<string, string> = {};
    const response = await client.passthrough(
      { providerName: "local", body: { model: "m" } },
      { onHeader: (received) => received.forEach((value, name) => (headers[name] = value)) },
    );
    expect(response.body?.model).toBe("m");
    expect(response.body?.metadata).toEqual({ key: headers["x-journal-key"] });
    expect(headers).toMatchObject(NO_CACHE);
    expect(provider.requests[0].json).toEqual({ model: "m" });
  });

  it("answers an error with its code", async () => {
    const client = createClient(PassthroughService, createConnectTransport({ baseUrl: gateway.url, httpVersion: "2" }));
    await expect(client.passthrough({ providerName: "nope", body: {} })).rejects.toMatchObject({ code: Code.NotFound });
  });
});
