import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { JsonObject } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createCallTracker, type CallRecord } from "../../src/call/record.js";
import { PassthroughService } from "../../src/gen/smarter/prompt/v1/passthrough_pb.js";
import { assembleStream } from "../../src/call/stream-assembly.js";
import { ANONYMOUS_PRINCIPAL } from "../../src/call/record.js";
import { journalEntryOf } from "../../src/journal/entry.js";
import { openStore } from "../../src/store/open.js";
import type { JournalEntry, Store } from "../../src/store/store.js";
import { callStream, createProtocolClient, PROTOCOLS, STREAM_PROTOCOLS } from "../support/clients.js";
import { chunks, completion, contentOf, errorBody, json, sse, startFakeProvider, text, type FakeProvider } from "../support/fake-provider.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

// Records of real calls on every protocol, mapped to journal entries, written to a real store
// and read back: what the journal keeps of a success, a failure, a body that does not decode,
// a body over the limit, a stream and a cancelled one.
let provider: FakeProvider;
let gateway: TestGateway;
let small: TestGateway;
let store: Store;
const ended: CallRecord[] = [];
const SMALL_LIMIT = 1024;

beforeAll(async () => {
  provider = await startFakeProvider();
  const onCallEnd = [(call: CallRecord) => void ended.push(call)];
  const providers = [{ name: "local", baseUrl: provider.url, retries: 0 }];
  gateway = await startTestGateway({ providers }, {}, { onCallEnd });
  small = await startTestGateway({ providers, server: { maxBodyBytes: SMALL_LIMIT } }, {}, { onCallEnd });
  store = await openStore(`sqlite:${join(mkdtempSync(join(tmpdir(), "passthrough-journal-entry-")), "journal.db")}`);
});
afterAll(async () => {
  await gateway?.close();
  await small?.close();
  await provider?.close();
  await store?.close();
});
afterEach(() => {
  provider.clear();
  ended.length = 0;
});

/** The entry of the one call that ended since the test began, after a round trip through the store. */
async function theEntry(): Promise<JournalEntry> {
  for (let waited = 0; ended.length === 0 && waited < 5000; waited += 10) await new Promise((resolve) => setTimeout(resolve, 10));
  await new Promise((resolve) => setTimeout(resolve, 100));
  expect(ended).toHaveLength(1);
  const entry = journalEntryOf(ended[0]);
  expect(await store.writeJournal([entry])).toBe(1);
  expect(await store.getJournalEntry(entry.key)).toEqual(entry);
  return entry;
}

/** A provider answer in its own formatting, which the journal keeps as sent. */
const ownText = `{ "id": "chatcmpl-own",  "object": "chat.completion", "created": 1700000000, "model": "m",
  "choices": [ { "index": 0, "message": { "role": "assistant", "content": "hi" }, "finish_reason": "stop" } ],
  "usage": { "prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21 } }`;

describe.each(PROTOCOLS)("the journal entry of a call over %s", (protocol) => {
  it("holds a success: key, time, anonymous principal, provider, request, the provider's own text, status, usage", async () => {
    provider.reply(text(200, ownText, "application/json"));
    const before = Date.now();
    const client = createProtocolClient(protocol, gateway.url, { authorization: "Bearer not-for-the-journal" });
    const result = await client.unary("Local", { model: "m", messages: [{ role: "user", content: "héllo" }] });
    client.close();
    expect(result.ok).toBe(true);
    const entry = await theEntry();
    expect(entry).toMatchObject({
      key: result.headers["x-journal-key"],
      principal: ANONYMOUS_PRINCIPAL,
      provider: "local",
      protocol,
      responseBody: ownText,
      status: 200,
      grpcCode: 0,
      upstreamStatus: 200,
      promptTokens: 9,
      completionTokens: 12,
      totalTokens: 21,
      error: null,
    });
    expect(JSON.parse(entry.requestBody!)).toEqual({ model: "m", messages: [{ role: "user", content: "héllo" }] });
    expect(entry.time.getTime()).toBeGreaterThanOrEqual(before - 1);
    expect(entry.time.getTime()).toBeLessThanOrEqual(Date.now());
    expect(entry.durationMs).toBeGreaterThan(0);
    expect(JSON.stringify(entry)).not.toContain("not-for-the-journal");
  });

  it("holds an upstream failure: no response body, the code and status the caller got, the message", async () => {
    provider.reply(json(500, errorBody("down")));
    const client = createProtocolClient(protocol, gateway.url);
    const result = await client.unary("local", { model: "m" });
    client.close();
    const entry = await theEntry();
    expect(entry).toMatchObject({ provider: "local", responseBody: null, grpcCode: Code.Unavailable, upstreamStatus: 500, error: result.message });
    expect(entry.status).toBe({ rest: 502, connect: 503, grpc: 200, "grpc-web": 200 }[protocol]);
    expect(entry.promptTokens).toBeNull();
  });

  it("holds a body over the limit as RESOURCE_EXHAUSTED, with no request body (none was kept)", async () => {
    const client = createProtocolClient(protocol, small.url);
    await client.unary("local", { model: "m", padding: "x".repeat(4 * SMALL_LIMIT) });
    client.close();
    const entry = await theEntry();
    expect(entry).toMatchObject({ grpcCode: Code.ResourceExhausted, requestBody: null, responseBody: null, upstreamStatus: null });
    expect(entry.error).toBeTruthy();
  });
});

describe("the journal entry of a body that does not decode", () => {
  it("keeps the REST bytes as received", async () => {
    const response = await fetch(`${gateway.url}/api/v1/prompts/passthrough/local/`, { method: "POST", headers: { "content-type": "application/json" }, body: "\uFEFF{not json" });
    const entry = await theEntry();
    expect(entry).toMatchObject({ key: response.headers.get("x-journal-key"), protocol: "rest", requestBody: "\uFEFF{not json", grpcCode: Code.InvalidArgument, status: 400, provider: null });
  });

  it("has no request body on Connect, whose door keeps no bytes", async () => {
    const response = await fetch(`${gateway.url}/smarter.prompt.v1.PassthroughService/Passthrough`, { method: "POST", headers: { "content-type": "application/json" }, body: "{not json" });
    await response.arrayBuffer();
    const entry = await theEntry();
    expect(entry).toMatchObject({ protocol: "connect", requestBody: null, grpcCode: Code.InvalidArgument });
  });
});

describe.each(STREAM_PROTOCOLS)("the journal entry of a PassthroughStream over %s", (protocol) => {
  it("holds the assembled stream and the usage of its last chunk", async () => {
    provider.reply(sse(chunks(3, "m")));
    await callStream(protocol, gateway.url, "local", { model: "m", stream: true });
    const entry = await theEntry();
    expect(JSON.parse(entry.responseBody!)).toEqual(assembleStream(chunks(3, "m") as JsonObject[], false));
    expect(entry).toMatchObject({ protocol, grpcCode: 0, totalTokens: 21 });
  });

  it("holds what was relayed of a stream the caller cancelled", async () => {
    provider.reply(sse(chunks(20, "m"), { intervalMs: 50 }));
    await callStream(protocol, gateway.url, "local", { model: "m" }, { onChunk: (index, controller) => index === 1 && controller.abort() });
    const entry = await theEntry();
    expect(entry).toMatchObject({ grpcCode: Code.Canceled, status: 499 });
    expect(entry.error).toBeTruthy();
    const assembled = JSON.parse(entry.responseBody!) as JsonObject;
    expect(assembled.chunks).toBeGreaterThanOrEqual(2);
    expect(((assembled.choices as JsonObject[])[0].message as JsonObject).content).toMatch(/^Hello,/);
  });
});

describe("the journal entry of a REST stream", () => {
  it("holds the same assembly as an RPC stream, from the relayed SSE bytes", async () => {
    provider.reply(sse(chunks(3, "m")));
    const response = await fetch(`${gateway.url}/api/v1/prompts/passthrough/local/`, { method: "POST", body: '{"model":"m","stream":true}' });
    await response.text();
    const entry = await theEntry();
    expect(entry.requestBody).toBe('{"model":"m","stream":true}');
    expect(JSON.parse(entry.responseBody!)).toEqual(assembleStream(chunks(3, "m") as JsonObject[], false));
    expect(entry).toMatchObject({ protocol: "rest", grpcCode: 0, status: 200, totalTokens: 21 });
  });

  it("keeps only what the record kept of a truncated stream, and says so", async () => {
    const limited = await startTestGateway(
      { providers: [{ name: "local", baseUrl: provider.url, retries: 0 }], server: { maxRecordedBytes: 600 } },
      {},
      { onCallEnd: [(call: CallRecord) => void ended.push(call)] },
    );
    try {
      provider.reply(sse(chunks(12, "m")));
      const response = await fetch(`${limited.url}/api/v1/prompts/passthrough/local/`, { method: "POST", body: '{"stream":true}' });
      await response.text();
      const assembled = JSON.parse((await theEntry()).responseBody!) as JsonObject;
      expect(assembled.truncated).toBe(true);
      expect(assembled.chunks).toBeLessThan(13);
      expect(contentOf(chunks(12, "m"))).toContain(((assembled.choices as JsonObject[])[0].message as JsonObject).content);
    } finally {
      await limited.close();
    }
  });
});

describe("journalEntryOf on a record built by the tracker", () => {
  const tracker = createCallTracker({ maxRecordedBytes: 1 << 20, onListenerError: (error) => { throw error; } });
  const start = () => tracker.start({ protocol: "grpc", door: "connect-node", method: PassthroughService.method.passthrough, requestHeader: new Headers({ authorization: "Bearer secret" }) });

  it("names the principal authentication set, and takes a unary answer's text and usage", () => {
    const call = start();
    call.principal = { kind: "key", id: "key-1" };
    call.providerName = "openai";
    call.request = { body: { model: "m" } };
    call.answer = { kind: "unary", text: JSON.stringify(completion("m")), body: completion("m") as JsonObject };
    call.usage = { promptTokens: 1, totalTokens: 3 };
    call.upstreamStatus = 200;
    call.answered({ code: 0, status: 200 });
    call.end(true);
    expect(journalEntryOf(call)).toEqual({
      key: call.journalKey,
      time: new Date(call.startedAt),
      principal: "key-1",
      provider: "openai",
      protocol: "grpc",
      requestBody: '{"model":"m"}',
      responseBody: JSON.stringify(completion("m")),
      status: 200,
      grpcCode: 0,
      upstreamStatus: 200,
      durationMs: call.durationMs,
      promptTokens: 1,
      completionTokens: null,
      totalTokens: 3,
      error: null,
    });
  });

  it("journals a record that ended without an answer as the cancelled call it was", () => {
    const call = start();
    call.end(false);
    expect(journalEntryOf(call)).toMatchObject({ principal: ANONYMOUS_PRINCIPAL, provider: null, requestBody: null, responseBody: null, grpcCode: Code.Canceled, status: 499 });
    expect(journalEntryOf(call).error).toMatch(/went away/);
  });

  it("keeps only token counts the database's integer column takes", () => {
    const call = start();
    call.usage = { promptTokens: 1.5, completionTokens: 2 ** 31, totalTokens: -1 };
    call.end(false);
    expect(journalEntryOf(call)).toMatchObject({ promptTokens: null, completionTokens: null, totalTokens: null });
    call.usage = { promptTokens: 0, totalTokens: 2 ** 31 - 1 };
    expect(journalEntryOf(call)).toMatchObject({ promptTokens: 0, completionTokens: null, totalTokens: 2 ** 31 - 1 });
  });

  it("decodes REST bytes that are not UTF-8 with replacement characters rather than failing", () => {
    const call = start();
    call.request = { bytes: new Uint8Array([0x7b, 0xff, 0x00, 0x7d]) };
    call.answered({ code: Code.InvalidArgument, status: 400, message: "invalid JSON" });
    call.end(true);
    expect(journalEntryOf(call)).toMatchObject({ requestBody: "{\uFFFD\0}", error: "invalid JSON", grpcCode: Code.InvalidArgument });
  });
});
