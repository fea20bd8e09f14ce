import { randomBytes } from "node:crypto";
import { SpanKind, SpanStatusCode } from "@opentelemetry/api";
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from "@opentelemetry/sdk-trace-base";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { until } from "../journal/support.js";
import { callStream, createProtocolClient, PROTOCOLS } from "../support/clients.js";
import { json, startFakeProvider, type FakeProvider } from "../support/fake-provider.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

// W3C trace context from the caller to the provider, and the spans of each call: relayed as it
// came when the gateway does not trace, continued through its own spans when it does.
let provider: FakeProvider;
let plain: TestGateway;
let traced: TestGateway;
const exporter = new InMemorySpanExporter();
const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });

beforeAll(async () => {
  provider = await startFakeProvider();
  const providers = [{ name: "local", baseUrl: provider.url, retries: 0 }];
  plain = await startTestGateway({ providers });
  traced = await startTestGateway({ providers }, {}, undefined, { tracerProvider });
});
afterAll(async () => {
  await plain?.close();
  await traced?.close();
  await tracerProvider.shutdown();
  await provider?.close();
});
afterEach(() => {
  provider.clear();
  exporter.reset();
});

const hex = (bytes: number) => randomBytes(bytes).toString("hex");
const callerContext = () => {
  const traceId = hex(16);
  const spanId = hex(8);
  return { traceId, spanId, headers: { traceparent: `00-${traceId}-${spanId}-01`, tracestate: "caller=t61rcWkgMzE,other=x" } };
};
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const SERVER_NAMES = { rest: "POST /api/v1/prompts/passthrough/{provider_name}/", grpc: "smarter.prompt.v1.PassthroughService/Passthrough" } as const;

/** The spans of the call with this journal key, once its server span has ended. */
async function spansOf(journalKey: string | undefined): Promise<{ server: ReadableSpan; client?: ReadableSpan }> {
  expect(journalKey).toMatch(/^[0-9a-f]{64}$/);
  const server = () => exporter.getFinishedSpans().find((span) => span.kind === SpanKind.SERVER && span.attributes["passthrough.journal_key"] === journalKey);
  await until(() => server() !== undefined, "the call's server span has ended");
  const found = server()!;
  const client = exporter.getFinishedSpans().find((span) => span.kind === SpanKind.CLIENT && span.parentSpanContext?.spanId === found.spanContext().spanId);
  return { server: found, client };
}

describe.each(PROTOCOLS)("trace context over %s", (protocol) => {
  it("without tracing, the caller's traceparent and tracestate reach the provider unchanged", async () => {
    const caller = callerContext();
    const client = createProtocolClient(protocol, plain.url, caller.headers);
    expect((await client.unary("local", { model: "m" })).ok).toBe(true);
    client.close();
    const [received] = await provider.waitForRequests(1);
    expect(received.headers.traceparent).toBe(caller.headers.traceparent);
    expect(received.headers.tracestate).toBe(caller.headers.tracestate);
  });

  it("with tracing, a server span child of the caller's and a client span child of it, whose context reaches the provider", async () => {
    const caller = callerContext();
    const client = createProtocolClient(protocol, traced.url, caller.headers);
    const result = await client.unary("local", { model: "m" });
    client.close();
    expect(result.ok).toBe(true);
    const [received] = await provider.waitForRequests(1);
    const { server, client: upstream } = await spansOf(result.headers["x-journal-key"]);

    expect(server.name).toBe(protocol === "rest" ? SERVER_NAMES.rest : SERVER_NAMES.grpc);
    expect(server.spanContext().traceId).toBe(caller.traceId);
    expect(server.parentSpanContext).toMatchObject({ traceId: caller.traceId, spanId: caller.spanId, isRemote: true });
    expect(server.attributes).toMatchObject({
      "rpc.service": "smarter.prompt.v1.PassthroughService",
      "rpc.method": "Passthrough",
      "passthrough.protocol": protocol,
      "passthrough.provider": "local",
      "passthrough.journal_key": result.headers["x-journal-key"],
      "rpc.grpc.status_code": 0,
    });
    if (protocol === "rest") {
      expect(server.attributes).toMatchObject({ "http.request.method": "POST", "http.route": "/api/v1/prompts/passthrough/{provider_name}/", "http.response.status_code": 200 });
      expect(server.attributes["rpc.system"]).toBeUndefined();
    } else {
      expect(server.attributes["rpc.system"]).toBe(protocol === "connect" ? "connect_rpc" : "grpc");
    }
    expect(server.status.code).toBe(SpanStatusCode.UNSET);

    expect(upstream).toBeDefined();
    expect(upstream!.name).toBe("POST /v1/chat/completions");
    expect(upstream!.spanContext().traceId).toBe(caller.traceId);
    expect(upstream!.attributes).toMatchObject({ "http.request.method": "POST", "http.response.status_code": 200, "server.address": "127.0.0.1", "passthrough.provider": "local" });
    // The provider's parent is the client span: the caller's trace, the gateway's span, the caller's sampling and tracestate.
    const [, traceId, parentId, flags] = TRACEPARENT.exec(String(received.headers.traceparent))!;
    expect({ traceId, parentId, flags }).toEqual({ traceId: caller.traceId, parentId: upstream!.spanContext().spanId, flags: "01" });
    expect(received.headers.tracestate).toBe(caller.headers.tracestate);
    // The client span lies within the server span.
    const start = (span: ReadableSpan) => span.startTime[0] * 1e9 + span.startTime[1];
    const end = (span: ReadableSpan) => span.endTime[0] * 1e9 + span.endTime[1];
    expect(start(upstream!)).toBeGreaterThanOrEqual(start(server));
    expect(end(upstream!)).toBeLessThanOrEqual(end(server));
  });
});

describe("trace context", () => {
  it("is not relayed when the caller's traceparent is invalid, nor its tracestate", async () => {
    const client = createProtocolClient("rest", plain.url, { traceparent: `00-${"0".repeat(32)}-${hex(8)}-01`, tracestate: "a=b" });
    expect((await client.unary("local", { model: "m" })).ok).toBe(true);
    const [received] = await provider.waitForRequests(1);
    expect(received.headers.traceparent).toBeUndefined();
    expect(received.headers.tracestate).toBeUndefined();
  });

  it("starts a trace of its own, with tracing on, for a caller that sent none", async () => {
    const result = await createProtocolClient("rest", traced.url).unary("local", { model: "m" });
    const [received] = await provider.waitForRequests(1);
    const { server, client } = await spansOf(result.headers["x-journal-key"]);
    expect(server.parentSpanContext).toBeUndefined();
    const [, traceId, parentId] = TRACEPARENT.exec(String(received.headers.traceparent))!;
    expect({ traceId, parentId }).toEqual({ traceId: server.spanContext().traceId, parentId: client!.spanContext().spanId });
    expect(received.headers.tracestate).toBeUndefined();
  });

  it("traces a stream to its end, and a call that never reached the provider with its code and no client span", async () => {
    const caller = callerContext();
    let journalKey: string | undefined;
    const streamed = await callStream("grpc-web", traced.url, "local", { model: "m" }, { headers: caller.headers, onHeaders: (headers) => (journalKey = headers["x-journal-key"]) });
    expect(streamed.code).toBeUndefined();
    const stream = await spansOf(journalKey);
    expect(stream.server.name).toBe("smarter.prompt.v1.PassthroughService/PassthroughStream");
    expect(stream.server.parentSpanContext?.spanId).toBe(caller.spanId);
    expect(stream.client?.attributes["http.response.status_code"]).toBe(200);

    const missing = await createProtocolClient("rest", traced.url, caller.headers).unary("nope", { model: "m" });
    expect(missing.status).toBe(404);
    const failed = await spansOf(missing.headers["x-journal-key"]);
    expect(failed.server.attributes).toMatchObject({ "rpc.grpc.status_code": 5, "http.response.status_code": 404, "passthrough.provider": "nope" });
    // A caller's error is no error of the server's.
    expect(failed.server.status.code).toBe(SpanStatusCode.UNSET);
    expect(failed.client).toBeUndefined();
  });

  it("marks the spans as errors when the provider fails", async () => {
    provider.reply(json(503, { error: { message: "busy" } }));
    const result = await createProtocolClient("rest", traced.url).unary("local", { model: "m" });
    expect(result.status).toBe(502);
    const { server, client } = await spansOf(result.headers["x-journal-key"]);
    expect(server.status.code).toBe(SpanStatusCode.ERROR);
    expect(server.attributes["http.response.status_code"]).toBe(502);
    expect(client!.status.code).toBe(SpanStatusCode.ERROR);
    expect(client!.attributes["http.response.status_code"]).toBe(503);
  });
});
