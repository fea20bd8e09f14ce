import { Code } from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { CallRecord } from "../../src/call/record.js";
import { callStream, createProtocolClient, PROTOCOLS, sendUndecodable, STREAM_PROTOCOLS } from "../support/clients.js";
import { chunks, completion, errorBody, json, sse, startFakeProvider, type FakeProvider } from "../support/fake-provider.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

// Every call ends its record exactly once, with what happened in it, whatever door it came
// through: success, an upstream failure, a body that does not decode, a body over the limit,
// and a stream the caller cancels.
let provider: FakeProvider;
let gateway: TestGateway;
let small: TestGateway;
const ended: CallRecord[] = [];
const SMALL_LIMIT = 1024;

beforeAll(async () => {
  provider = await startFakeProvider();
  const onCallEnd = [(call: CallRecord) => void ended.push(call)];
  const providers = [{ name: "local", baseUrl: provider.url, retries: 0 }];
  gateway = await startTestGateway({ providers }, {}, { onCallEnd });
  small = await startTestGateway({ providers, server: { maxBodyBytes: SMALL_LIMIT } }, {}, { onCallEnd });
});
afterAll(async () => {
  await gateway?.close();
  await small?.close();
  await provider?.close();
});
afterEach(() => {
  provider.clear();
  ended.length = 0;
});

/** The one record that ended since the test began, once no other has for a while. */
async function theRecord(): Promise<CallRecord> {
  for (let waited = 0; ended.length === 0 && waited < 5000; waited += 10) await new Promise((resolve) => setTimeout(resolve, 10));
  await new Promise((resolve) => setTimeout(resolve, 100));
  expect(ended).toHaveLength(1);
  return ended[0];
}

const procedures = { unary: "/smarter.prompt.v1.PassthroughService/Passthrough", stream: "/smarter.prompt.v1.PassthroughService/PassthroughStream" };

describe.each(PROTOCOLS)("the call record over %s", (protocol) => {
  it("holds a successful call: request, answer, upstream status, usage, outcome, duration", async () => {
    provider.reply(json(200, completion("m")));
    const client = createProtocolClient(protocol, gateway.url);
    const result = await client.unary("Local", { model: "m", messages: [] });
    client.close();
    expect(result.ok).toBe(true);
    const call = await theRecord();
    expect(call).toMatchObject({ protocol, procedure: procedures.unary, providerName: "local", upstreamStatus: 200, ended: true });
    expect(call.journalKey).toBe(result.headers["x-journal-key"]);
    expect(call.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(call.request?.body).toEqual({ model: "m", messages: [] });
    if (protocol === "rest") expect(Buffer.from(call.request!.bytes!).toString()).toBe(JSON.stringify({ model: "m", messages: [] }));
    expect(call.answer).toMatchObject({ kind: "unary", body: completion("m") });
    expect(call.usage).toEqual({ promptTokens: 9, completionTokens: 12, totalTokens: 21 });
    expect(call.outcome).toEqual({ code: 0, status: 200 });
    expect(call.durationMs).toBeGreaterThan(0);
    expect(call.startedAt).toBeLessThanOrEqual(Date.now());
  });

  it("holds an upstream failure with the provider's status and the code the caller got", async () => {
    provider.reply(json(500, errorBody("down")));
    const client = createProtocolClient(protocol, gateway.url);
    const result = await client.unary("local", { model: "m" });
    client.close();
    expect(result.code).toBe("unavailable");
    const call = await theRecord();
    expect(call.upstreamStatus).toBe(500);
    expect(call.outcome?.code).toBe(Code.Unavailable);
    expect(call.outcome?.status).toBe({ rest: 502, connect: 503, grpc: 200, "grpc-web": 200 }[protocol]);
    expect(call.outcome?.message).toBe(result.message);
    expect(call.journalKey).toBe(result.headers["x-journal-key"]);
  });

  it("holds a request whose body does not decode, with the code the caller got", async () => {
    const answer = await sendUndecodable(protocol, gateway.url);
    const call = await theRecord();
    expect(call.procedure).toBe(procedures.unary);
    expect(call.outcome?.code).toBe(answer.code);
    expect(call.outcome?.code).not.toBe(0);
    expect(call.journalKey).toBe(answer.journalKey);
    if (protocol === "rest") expect(Buffer.from(call.request!.bytes!).toString()).toBe("{not json");
    expect(provider.requests).toHaveLength(0);
  });

  it("holds a request over the body limit as RESOURCE_EXHAUSTED", async () => {
    const client = createProtocolClient(protocol, small.url);
    const result = await client.unary("local", { model: "m", padding: "x".repeat(4 * SMALL_LIMIT) });
    client.close();
    expect(result.code).toBe("resource_exhausted");
    const call = await theRecord();
    expect(call.outcome?.code).toBe(Code.ResourceExhausted);
    if (protocol === "rest") expect(call.outcome?.status).toBe(413);
    expect(provider.requests).toHaveLength(0);
  });
});

describe.each(STREAM_PROTOCOLS)("the record of a PassthroughStream over %s", (protocol) => {
  it("holds every chunk of a whole stream and the usage of its last", async () => {
    provider.reply(sse(chunks(3, "m")));
    const result = await callStream(protocol, gateway.url, "local", { model: "m" });
    expect(result.code).toBeUndefined();
    const call = await theRecord();
    expect(call).toMatchObject({ protocol, procedure: procedures.stream, outcome: { code: 0, status: 200 } });
    expect(call.answer).toEqual({ kind: "stream", events: chunks(3, "m"), truncated: false });
    expect(call.usage).toEqual({ promptTokens: 9, completionTokens: 12, totalTokens: 21 });
  });

  it("ends once as CANCELED with what was relayed when the caller cancels midway", async () => {
    provider.reply(sse(chunks(20, "m"), { intervalMs: 50 }));
    const result = await callStream(protocol, gateway.url, "local", { model: "m" }, { onChunk: (index, controller) => index === 1 && controller.abort() });
    expect(result.code).toBe("canceled");
    const call = await theRecord();
    expect(call.outcome?.code).toBe(Code.Canceled);
    const events = call.answer?.kind === "stream" ? call.answer.events : [];
    expect(events.length).toBeGreaterThanOrEqual(2);
    expect(events.length).toBeLessThan(21);
    expect(events.slice(0, 2)).toEqual(chunks(20, "m").slice(0, 2));
  });
});

describe("the record of a REST stream", () => {
  it("keeps the relayed SSE bytes, and ends once as CANCELED when the caller hangs up midway", async () => {
    provider.reply(sse(chunks(20, "m"), { intervalMs: 50 }));
    const controller = new AbortController();
    const response = await fetch(`${gateway.url}/api/v1/prompts/passthrough/local/`, { method: "POST", body: '{"stream":true}', signal: controller.signal });
    const reader = response.body!.getReader();
    await reader.read();
    controller.abort();
    const call = await theRecord();
    expect(call.protocol).toBe("rest");
    expect(call.journalKey).toBe(response.headers.get("x-journal-key"));
    expect(call.outcome?.code).toBe(Code.Canceled);
    const events = call.answer?.kind === "stream" ? call.answer.events : [];
    expect(events.length).toBeGreaterThan(0);
    expect(Buffer.from(events[0] as Uint8Array).toString()).toMatch(/^data: \{/);
  });
});
