import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { eventJson, type SignalEvent, type SignalName } from "../../src/signals/sink.js";
import { callStream, createProtocolClient, PROTOCOLS, sendUndecodable, STREAM_PROTOCOLS } from "../support/clients.js";
import { chunks, completion, contentOf, errorBody, json, sse, startFakeProvider, text, type FakeProvider } from "../support/fake-provider.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";
import { memorySink } from "../support/memory-sink.js";

// The lifecycle signals of SPEC section 6 on every protocol and both RPCs: the right ones, in
// order, exactly once each, sharing the call's request_id and journal_key.
let provider: FakeProvider;
let gateway: TestGateway;
let bodiless: TestGateway;
let guarded: TestGateway;
const events: SignalEvent[] = [];

const sink = memorySink(events);

beforeAll(async () => {
  provider = await startFakeProvider();
  const providers = [{ name: "local", baseUrl: provider.url, retries: 0 }];
  gateway = await startTestGateway({ providers, server: { instanceId: "signals-test" } }, {}, undefined, { signalSinks: [sink] });
  bodiless = await startTestGateway({ providers, signals: { includeBodies: false } }, {}, undefined, { signalSinks: [sink] });
  guarded = await startTestGateway({ providers }, {}, undefined, { authenticate: true, signalSinks: [sink] });
});
afterAll(async () => {
  await gateway?.close();
  await bodiless?.close();
  await guarded?.close();
  await provider?.close();
});
afterEach(() => {
  provider.clear();
  events.length = 0;
});

/** The events of the call with this journal key, once its `chat_finished` has been delivered and no other followed for a while. */
async function signalsOf(journalKey: string | null | undefined): Promise<SignalEvent[]> {
  expect(journalKey).toMatch(/^[0-9a-f]{64}$/);
  const mine = () => events.filter((event) => event.journal_key === journalKey);
  for (let waited = 0; !mine().some((event) => event.signal === "chat_finished") && waited < 5000; waited += 10) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  await new Promise((resolve) => setTimeout(resolve, 50));
  const found = mine();
  expect(new Set(found.map((event) => event.request_id)).size).toBe(1);
  expect(new Set(found.map((event) => event.id)).size).toBe(found.length);
  return found;
}

const names = (list: SignalEvent[]): SignalName[] => list.map((event) => event.signal);
const succeeded: SignalName[] = ["chat_started", "chat_completion_request", "chat_completion_response", "chat_finished"];
const failedUpstream: SignalName[] = ["chat_started", "chat_completion_request", "chat_response_failure", "chat_finished"];
const failedBefore: SignalName[] = ["chat_started", "chat_response_failure", "chat_finished"];

describe.each(PROTOCOLS)("signals of a Passthrough call over %s", (protocol) => {
  it("are the four of a success, in order, with the call's fields and bodies", async () => {
    provider.reply(json(200, completion("m")));
    const client = createProtocolClient(protocol, gateway.url);
    const result = await client.unary("Local", { model: "m", messages: [{ role: "user", content: "hi" }] });
    client.close();
    expect(result.ok).toBe(true);
    const list = await signalsOf(result.headers["x-journal-key"]);
    expect(names(list)).toEqual(succeeded);
    for (const event of list) {
      expect(event).toMatchObject({ provider: "local", protocol, principal: null, source: "passthrough/signals-test" });
      expect(new Date(event.time).toISOString()).toBe(event.time);
      expect(event.id).toMatch(/^[0-9a-f-]{36}$/);
    }
    const [, request, response, finished] = list;
    expect(request.data).toEqual({ body: { model: "m", messages: [{ role: "user", content: "hi" }] } });
    expect(response.data).toMatchObject({ upstream_status: 200, body: completion("m"), usage: { prompt_tokens: 9, completion_tokens: 12, total_tokens: 21 } });
    expect(finished.data).toMatchObject({ code: "ok", status: 200 });
    expect(finished.data.duration_ms).toBeGreaterThan(0);
  });

  it("report an upstream failure instead of a response", async () => {
    provider.reply(json(500, errorBody("down")));
    const client = createProtocolClient(protocol, gateway.url);
    const result = await client.unary("local", { model: "m" });
    client.close();
    const list = await signalsOf(result.headers["x-journal-key"]);
    expect(names(list)).toEqual(failedUpstream);
    expect(list[2].data).toMatchObject({ code: "unavailable", upstream_status: 500, message: result.message });
    expect(list[3].data).toMatchObject({ code: "unavailable" });
  });

  it("have no request signal when the provider is unknown", async () => {
    const client = createProtocolClient(protocol, gateway.url);
    const result = await client.unary("nobody", { model: "m" });
    client.close();
    const list = await signalsOf(result.headers["x-journal-key"]);
    expect(names(list)).toEqual(failedBefore);
    expect(list[0].provider).toBe("nobody");
    expect(list[1].data).toMatchObject({ code: "not_found" });
  });

  it("start and finish a call whose body does not decode, before any interceptor ran", async () => {
    const answer = await sendUndecodable(protocol, gateway.url);
    const list = await signalsOf(answer.journalKey);
    expect(names(list)).toEqual(failedBefore);
    expect(list[1].data.code).not.toBe("ok");
    expect(provider.requests).toHaveLength(0);
  });

  it("leave the bodies out when signals.includeBodies is off", async () => {
    provider.reply(json(200, completion("m")));
    const client = createProtocolClient(protocol, bodiless.url);
    const result = await client.unary("local", { model: "m", secret_prompt: "do not copy" });
    client.close();
    const list = await signalsOf(result.headers["x-journal-key"]);
    expect(names(list)).toEqual(succeeded);
    for (const serialized of [JSON.stringify(list), list.map(eventJson).join("\n")]) {
      expect(serialized).not.toContain("do not copy");
      expect(serialized).not.toContain("Hello from the fake provider");
    }
  });

  it("are not emitted for a call that authentication refused", async () => {
    const client = createProtocolClient(protocol, guarded.url, { authorization: "Bearer ptk_aaaaaaaaaaaaaaaa_nope" });
    const result = await client.unary("local", { model: "m" });
    client.close();
    expect(result.code).toBe("unauthenticated");
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(events.filter((event) => event.journal_key === result.headers["x-journal-key"])).toEqual([]);
  });
});

describe.each(STREAM_PROTOCOLS)("signals of a PassthroughStream over %s", (protocol) => {
  it("carry the assembled stream in the response", async () => {
    provider.reply(sse(chunks(3, "m")));
    let journalKey: string | undefined;
    const result = await callStream(protocol, gateway.url, "local", { model: "m" }, { onHeaders: (headers) => (journalKey = headers["x-journal-key"]) });
    expect(result.code).toBeUndefined();
    const list = await signalsOf(journalKey);
    expect(names(list)).toEqual(succeeded);
    const body = list[2].data.body as { choices: { message: { content: string }; finish_reason: string }[] };
    expect(body.choices[0].message.content).toBe(contentOf(chunks(3, "m")));
    expect(body.choices[0].finish_reason).toBe("stop");
  });

  it("report a stream the caller cancelled midway as a failure, once", async () => {
    provider.reply(sse(chunks(20, "m"), { intervalMs: 50 }));
    let journalKey: string | undefined;
    const result = await callStream(protocol, gateway.url, "local", { model: "m" }, {
      onHeaders: (headers) => (journalKey = headers["x-journal-key"]),
      onChunk: (index, controller) => index === 1 && controller.abort(),
    });
    expect(result.code).toBe("canceled");
    const list = await signalsOf(journalKey);
    expect(names(list)).toEqual(failedUpstream);
    expect(list[2].data).toMatchObject({ code: "canceled" });
  });
});

describe("signals of a REST call, as sinks serialize them", () => {
  it("carry the caller's body and the provider's answer as the bytes they were, not as parsed and serialized again", async () => {
    // A number past double precision and spacing of its own survive only as the original text.
    const requestText = '{ "model": "m",  "seed": 12345678901234567890123, "messages": [{"role": "user", "content": "hi"}] }';
    const answerText = '{"id": "c1", "object": "chat.completion", "created": 1, "model": "m", "big": 98765432109876543210987, "choices": []}';
    provider.reply(text(200, answerText, "application/json"));
    const response = await fetch(`${gateway.url}/api/v1/prompts/passthrough/local/`, { method: "POST", headers: { "content-type": "application/json" }, body: requestText });
    expect(response.status).toBe(200);
    await response.arrayBuffer();
    const list = await signalsOf(response.headers.get("x-journal-key"));
    const [, request, answer] = list;
    expect(names(list)).toEqual(succeeded);
    const requestJson = eventJson(request);
    expect(requestJson).toContain(`"data":{"body":${requestText}}`);
    const plain = (event: unknown) => JSON.parse(JSON.stringify(event)) as unknown;
    expect(JSON.parse(requestJson)).toEqual(plain({ ...request, data: { body: JSON.parse(requestText) } }));
    const answerJson = eventJson(answer);
    expect(answerJson).toContain(`,"body":${answerText}}`);
    expect(JSON.parse(answerJson)).toEqual(plain({ ...answer, data: { ...answer.data, body: JSON.parse(answerText) } }));
    // The events' other JSON is what JSON.stringify makes of them.
    expect(eventJson(list[0])).toBe(JSON.stringify(list[0]));
  });
});

describe("signals of a REST stream", () => {
  it("are the four of a success, the response assembled from the relayed events", async () => {
    provider.reply(sse(chunks(3, "m")));
    const response = await fetch(`${gateway.url}/api/v1/prompts/passthrough/local/`, { method: "POST", body: '{"stream":true}' });
    await response.text();
    const list = await signalsOf(response.headers.get("x-journal-key"));
    expect(names(list)).toEqual(succeeded);
    expect(list[1].data).toEqual({ body: { stream: true } });
    const body = list[2].data.body as { choices: { message: { content: string } }[] };
    expect(body.choices[0].message.content).toBe(contentOf(chunks(3, "m")));
  });
});
