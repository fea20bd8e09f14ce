import OpenAI from "openai";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { callStream, STREAM_PROTOCOLS } from "../support/clients.js";
import { chunks, completion, contentOf, errorBody, handle, hang, json, sse, startFakeProvider, type FakeProvider } from "../support/fake-provider.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

let provider: FakeProvider;
let gateway: TestGateway;

beforeAll(async () => {
  provider = await startFakeProvider();
  gateway = await startTestGateway(
    {
      upstream: { backoffBaseMs: 50 },
      providers: [
        { name: "local", baseUrl: provider.url, apiKeyEnv: "LOCAL_KEY" },
        { name: "quick", baseUrl: provider.url, apiKeyEnv: "LOCAL_KEY", timeoutMs: 600 },
        { name: "closed", baseUrl: "http://127.0.0.1:9/v1", retries: 2 },
      ],
    },
    { LOCAL_KEY: "sk-stream-secret" },
  );
});

afterAll(async () => {
  await gateway?.close();
  await provider?.close();
});

afterEach(() => provider.clear());

const restUrl = (name: string) => `${gateway.url}/api/v1/prompts/passthrough/${name}/`;

/** The bytes the fake provider writes for these events (LF line endings). */
function sseBytes(events: unknown[], { done = true } = {}): string {
  return events.map((event) => `data: ${JSON.stringify(event)}\n\n`).join("") + (done ? "data: [DONE]\n\n" : "");
}

/** Reads a fetch response body, noting when each piece arrived. */
async function readTimed(response: Response): Promise<{ text: string; firstAt: number; endedAt: number }> {
  const decoder = new TextDecoder();
  let text = "";
  let firstAt = 0;
  for await (const piece of response.body as unknown as AsyncIterable<Uint8Array>) {
    if (!firstAt) firstAt = Date.now();
    text += decoder.decode(piece, { stream: true });
  }
  return { text, firstAt, endedAt: Date.now() };
}

async function postRest(name: string, body: unknown, init: RequestInit = {}): Promise<Response> {
  return fetch(restUrl(name), { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), ...init });
}

describe("REST stream: true", () => {
  it("relays the provider's events byte for byte, as they arrive, ending with [DONE]", async () => {
    const events = chunks(5, "m");
    provider.reply(sse(events, { intervalMs: 80, splitEvery: 7 }));
    const response = await postRest("local", { model: "m", stream: true, messages: [] });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    expect(response.headers.get("cache-control")).toBe("no-cache, no-store, must-revalidate, private, max-age=0");
    expect(response.headers.get("x-journal-key")).toMatch(/^[0-9a-f]{64}$/);
    const { text, firstAt } = await readTimed(response);
    expect(text).toBe(sseBytes(events));
    const [request] = provider.requests;
    // The first event reached the caller before the provider had written its last one.
    expect(firstAt).toBeLessThan(request.sentAt[request.sentAt.length - 1]);
    expect(request.json).toEqual({ model: "m", stream: true, messages: [] });
  });

  it.each([
    { name: "CRLF line endings", options: { crlf: true } },
    { name: "comments between events", options: { comments: true } },
    { name: "events split every byte", options: { splitEvery: 1 } },
  ])("keeps $name as sent", async ({ options }) => {
    const events = chunks(3, "m");
    provider.reply(sse(events, options));
    const response = await postRest("local", { model: "m", stream: true });
    const { text } = await readTimed(response);
    let expected = sseBytes(events);
    if ("comments" in options) expected = expected.split("data: ").join(": keep-alive\n\ndata: ");
    if ("crlf" in options) expected = expected.replace(/\n/g, "\r\n");
    expect(text).toBe(expected);
  });

  it("sends the status and headers at once when the provider's first event is late", async () => {
    provider.reply(
      handle(async (_request, res) => {
        res.writeHead(200, { "content-type": "text/event-stream" });
        res.flushHeaders();
        await new Promise((resolve) => setTimeout(resolve, 600));
        res.end(sseBytes(chunks(1, "m")));
      }),
    );
    const started = Date.now();
    const response = await postRest("local", { model: "m", stream: true });
    const headersAfter = Date.now() - started;
    expect(response.status).toBe(200);
    expect(headersAfter).toBeLessThan(400);
    const { text, firstAt } = await readTimed(response);
    expect(firstAt - started).toBeGreaterThanOrEqual(550);
    expect(text).toBe(sseBytes(chunks(1, "m")));
  });

  it("ends a stream broken midway with an SSE error event, then the end of the response", async () => {
    const events = chunks(5, "m");
    provider.reply(sse(events, { errorAfter: 2, intervalMs: 20 }));
    const response = await postRest("local", { model: "m", stream: true });
    expect(response.status).toBe(200);
    const { text } = await readTimed(response);
    const [before, after] = [text.slice(0, sseBytes(events.slice(0, 2), { done: false }).length), text.slice(sseBytes(events.slice(0, 2), { done: false }).length)];
    expect(before).toBe(sseBytes(events.slice(0, 2), { done: false }));
    expect(after).toMatch(/^event: error\ndata: \{.*\}\n\n$/);
    const envelope = JSON.parse(after.split("data: ")[1]) as { error: { code: string; status: number } };
    expect(envelope.error).toMatchObject({ code: "unavailable", status: 502 });
    expect(provider.requests).toHaveLength(1); // never retried once the stream had started
  });

  it("maps an upstream error before the first event as for a unary call", async () => {
    provider.reply(json(400, errorBody("bad model")));
    const response = await postRest("local", { model: "m", stream: true });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: { upstream: unknown } }).error.upstream).toEqual(errorBody("bad model"));
  });

  it("works with the official openai SDK's streaming", async () => {
    const events = chunks(4, "gpt-4o-mini");
    provider.reply(sse(events, { intervalMs: 10 }));
    const openai = new OpenAI({ apiKey: "caller", baseURL: `${gateway.url}/api/v1/prompts/passthrough/local`, maxRetries: 0 });
    const stream = await openai.chat.completions.create({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }], stream: true });
    const received: unknown[] = [];
    for await (const chunk of stream) received.push(chunk);
    expect(received).toEqual(events);
    expect(contentOf(received)).toBe(contentOf(events));
  });

  it("closes the upstream connection within a second when the caller hangs up", async () => {
    provider.reply(sse(chunks(50, "m"), { intervalMs: 50 }));
    const controller = new AbortController();
    const response = await postRest("local", { model: "m", stream: true }, { signal: controller.signal });
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    const abortedAt = Date.now();
    controller.abort();
    const [request] = provider.requests;
    const closedAt = await request.closed;
    expect(closedAt - abortedAt).toBeLessThan(1000);
    expect(await request.done).toBe("client-closed");
  });
});

describe.each(STREAM_PROTOCOLS)("PassthroughStream over %s", (protocol) => {
  it("delivers one message per provider chunk, in order and unchanged, with stream set to true", async () => {
    const events = chunks(5, "m");
    provider.reply(sse(events, { intervalMs: 60, splitEvery: 5 }));
    const result = await callStream(protocol, gateway.url, "local", { model: "m", messages: [], extra: { keep: 1 } });
    expect(result.code).toBeUndefined();
    expect(result.chunks).toEqual(events);
    const [request] = provider.requests;
    expect(request.json).toEqual({ model: "m", messages: [], extra: { keep: 1 }, stream: true });
    expect(result.arrivals[0]).toBeLessThan(request.sentAt[request.sentAt.length - 1]);
  });

  it("ends with UNAVAILABLE after the chunks received when the stream breaks midway", async () => {
    const events = chunks(5, "m");
    provider.reply(sse(events, { errorAfter: 3, intervalMs: 20 }));
    const result = await callStream(protocol, gateway.url, "local", { model: "m" });
    expect(result.chunks).toEqual(events.slice(0, 3));
    expect(result.code).toBe("unavailable");
    expect(provider.requests).toHaveLength(1);
  });

  it.each([
    { situation: "unknown provider", name: "nope", code: "not_found" },
    { situation: "upstream 400", reply: json(400, errorBody("bad")), code: "invalid_argument" },
    { situation: "upstream 500", reply: json(500, errorBody("boom")), code: "unavailable" },
  ])("maps $situation before the first chunk to $code", async ({ name = "local", reply, code }) => {
    if (reply) provider.reply({ ...reply });
    provider.setDefault(json(500, errorBody("still failing")));
    const result = await callStream(protocol, gateway.url, name, { model: "m" });
    expect(result.chunks).toEqual([]);
    expect(result.code).toBe(code);
  });

  it("closes the upstream connection within a second when the caller cancels", async () => {
    provider.reply(sse(chunks(50, "m"), { intervalMs: 50 }));
    let cancelledAt = 0;
    const result = await callStream(protocol, gateway.url, "local", { model: "m" }, {
      onChunk: (index, controller) => {
        if (index === 0) {
          cancelledAt = Date.now();
          controller.abort();
        }
      },
    });
    expect(result.code).toBe("canceled");
    const [request] = provider.requests;
    expect((await request.closed) - cancelledAt).toBeLessThan(1000);
  });

  it("closes the upstream connection within a second when the caller's deadline passes", async () => {
    provider.reply(hang());
    const started = Date.now();
    const result = await callStream(protocol, gateway.url, "local", { model: "m" }, { timeoutMs: 300 });
    expect(result.code).toBe("deadline_exceeded");
    const [request] = provider.requests;
    expect((await request.closed) - (started + 300)).toBeLessThan(1000);
  });
});

describe("many streams at once", () => {
  it("are served without a listener-leak warning (each links its signal to the gateway's shutdown signal)", async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on("warning", onWarning);
    try {
      provider.setDefault(sse(chunks(3, "m"), { intervalMs: 100 }));
      const results = await Promise.all(STREAM_PROTOCOLS.flatMap((protocol) => Array.from({ length: 4 }, () => callStream(protocol, gateway.url, "local", { model: "m" }))));
      expect(results.map((result) => result.code)).toEqual(Array(12).fill(undefined));
      await new Promise(setImmediate);
      expect(warnings.filter((warning) => warning.name === "MaxListenersExceededWarning").map(String)).toEqual([]);
    } finally {
      process.off("warning", onWarning);
    }
  });
});

describe("deadlines, timeouts and retries", () => {
  it("a gRPC unary call's deadline aborts the upstream request within a second", async () => {
    provider.reply(hang());
    const { createGrpcJsClient, request: makeRequest } = await import("../support/clients.js");
    const grpcModule = await import("@grpc/grpc-js");
    const client = createGrpcJsClient(gateway.url);
    const started = Date.now();
    const code = await new Promise<number>((resolve) => {
      client.passthrough(makeRequest("local", { model: "m" }), new grpcModule.Metadata(), { deadline: Date.now() + 300 }, (error) => resolve(error?.code ?? 0));
    });
    client.close();
    expect(code).toBe(grpcModule.status.DEADLINE_EXCEEDED);
    const [request] = provider.requests;
    expect((await request.closed) - (started + 300)).toBeLessThan(1000);
  });

  it("a REST caller hanging up aborts the upstream request within a second", async () => {
    provider.reply(hang());
    const controller = new AbortController();
    const pending = postRest("local", { model: "m" }, { signal: controller.signal }).catch(() => undefined);
    const [request] = await provider.waitForRequests(1);
    const abortedAt = Date.now();
    controller.abort();
    await pending;
    expect((await request.closed) - abortedAt).toBeLessThan(1000);
  });

  it("honours Retry-After on 429 twice, then returns the 200", async () => {
    provider.reply(
      json(429, errorBody("slow"), { "retry-after": "1" }),
      json(429, errorBody("slow"), { "retry-after": "1" }),
      json(200, completion("m")),
    );
    const started = Date.now();
    const response = await postRest("local", { model: "m" });
    const elapsed = Date.now() - started;
    expect(response.status).toBe(200);
    expect(provider.requests).toHaveLength(3);
    expect(elapsed).toBeGreaterThanOrEqual(1900);
    expect(elapsed).toBeLessThan(5000);
  });

  it("relays a 429 whose Retry-After is beyond the cap at once", async () => {
    provider.reply(json(429, errorBody("later"), { "retry-after": "60" }));
    const started = Date.now();
    const response = await postRest("local", { model: "m" });
    expect(response.status).toBe(429);
    expect(response.headers.get("retry-after")).toBe("60");
    expect(provider.requests).toHaveLength(1);
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it("retries 502/503/504 with backoff and returns the first success", async () => {
    provider.reply(json(503, errorBody("busy")), json(502, errorBody("bad gateway")), json(200, completion("m")));
    const response = await postRest("local", { model: "m" });
    expect(response.status).toBe(200);
    expect(provider.requests).toHaveLength(3);
  });

  it("gives up after the configured retries and relays the last failure", async () => {
    provider.reply(json(503, errorBody("1")), json(503, errorBody("2")), json(503, errorBody("3")), json(200, completion("m")));
    const response = await postRest("local", { model: "m" });
    expect(response.status).toBe(502);
    expect(((await response.json()) as { error: { upstream: unknown } }).error.upstream).toEqual(errorBody("3"));
    expect(provider.requests).toHaveLength(3);
  });

  it("does not retry other 4xx/5xx answers", async () => {
    provider.reply(json(500, errorBody("boom")), json(200, completion("m")));
    expect((await postRest("local", { model: "m" })).status).toBe(502);
    expect(provider.requests).toHaveLength(1);
  });

  it("retries a refused connection, then answers 502", async () => {
    const response = await postRest("closed", { model: "m" });
    expect(response.status).toBe(502);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("unavailable");
  });

  it("answers 504 within the provider's timeout when the provider hangs", async () => {
    provider.setDefault(hang());
    const started = Date.now();
    const response = await postRest("quick", { model: "m" });
    const elapsed = Date.now() - started;
    expect(response.status).toBe(504);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("deadline_exceeded");
    expect(elapsed).toBeGreaterThanOrEqual(550);
    expect(elapsed).toBeLessThan(1500);
  });

  it("bounds retries by the provider's timeout", async () => {
    provider.setDefault(json(429, errorBody("slow"), { "retry-after": "1" }));
    const started = Date.now();
    const response = await postRest("quick", { model: "m" });
    expect(response.status).toBe(429);
    expect(Date.now() - started).toBeLessThan(1500);
    // The answer relayed when no time is left to wait keeps the provider's body.
    expect(((await response.json()) as { error: { upstream: unknown } }).error.upstream).toEqual(errorBody("slow"));
  });
});
