import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { parseSse } from "../../src/providers/sse-parser.js";
import {
  chunks,
  completion,
  contentOf,
  delay,
  errorBody,
  hang,
  json,
  reset,
  resetAfter,
  sse,
  startFakeProvider,
  text,
  type FakeProvider,
  type SseOptions,
} from "./fake-provider.js";

let provider: FakeProvider;
beforeAll(async () => {
  provider = await startFakeProvider();
});
afterAll(() => provider.close());
beforeEach(() => provider.clear());

const post = (body: unknown, init: RequestInit = {}) =>
  fetch(`${provider.url}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer provider-key" },
    body: JSON.stringify(body),
    ...init,
  });

/** Reads an SSE response into its events' data. */
async function readEvents(response: Response) {
  const events = [];
  for await (const event of parseSse(response.body!, 1024 * 1024)) events.push(event);
  return events;
}

describe("fake provider", () => {
  it("answers a chat.completion echoing the model, and records the request", async () => {
    const body = { model: "gpt-test", messages: [{ role: "user", content: "hi" }], extra: 1 };
    const response = await post(body);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual(completion("gpt-test"));
    const [request] = provider.requests;
    expect(request).toMatchObject({ method: "POST", path: "/v1/chat/completions", json: body });
    expect(request.headers.authorization).toBe("Bearer provider-key");
    expect(request.body.toString()).toBe(JSON.stringify(body));
  });

  it("answers 404 on another path, and records it", async () => {
    const response = await fetch(`${provider.origin}/elsewhere?x=1`);
    expect(response.status).toBe(404);
    expect(provider.requests.map((request) => [request.method, request.path])).toEqual([["GET", "/elsewhere?x=1"]]);
  });

  it.each([
    [400, errorBody("bad model"), {}],
    [401, errorBody("Incorrect API key", "invalid_request_error", "invalid_api_key"), {}],
    [404, errorBody("no such model"), {}],
    [429, errorBody("slow down", "rate_limit_exceeded"), { "retry-after": "1" }],
    [500, errorBody("oops", "server_error"), {}],
    [503, errorBody("overloaded", "server_error"), {}],
  ])("replies json %i", async (status, body, headers) => {
    provider.reply(json(status, body, headers));
    const response = await post({ model: "m" });
    expect(response.status).toBe(status);
    expect(response.headers.get("content-type")).toBe("application/json");
    expect(response.headers.get("retry-after")).toBe((headers as Record<string, string>)["retry-after"] ?? null);
    expect(await response.json()).toEqual(body);
  });

  it("consumes queued behaviours in order, then falls back to the default", async () => {
    provider.reply(json(503, {}), text(200, "<html>hi</html>", "text/html"));
    expect(provider.queued).toBe(2);
    expect((await post({ model: "m" })).status).toBe(503);
    const html = await post({ model: "m" });
    expect([html.headers.get("content-type"), await html.text()]).toEqual(["text/html", "<html>hi</html>"]);
    expect((await post({ model: "m" })).status).toBe(200);
    provider.setDefault(json(502, {}));
    expect((await post({ model: "m" })).status).toBe(502);
  });

  it("resets the connection without answering", async () => {
    provider.reply(reset());
    const error = await post({ model: "m" }).catch((reason: unknown) => reason);
    expect(error).toBeInstanceOf(TypeError);
    expect((error as { cause?: { code?: string } }).cause?.code).toBe("ECONNRESET");
    expect(await provider.requests[0].done).toBe("reset");
  });

  it("resets the connection midway through a body", async () => {
    provider.reply(resetAfter(10));
    const response = await post({ model: "m" });
    expect(response.status).toBe(200);
    await expect(response.text()).rejects.toThrow();
  });

  it("reuses connections (keep-alive)", async () => {
    const before = provider.connections;
    await (await post({ model: "m" })).text();
    await (await post({ model: "m" })).text();
    expect(provider.connections - before).toBeLessThanOrEqual(1);
  });

  it("streams a default SSE answer for stream: true", async () => {
    const events = await readEvents(await post({ model: "m", stream: true }));
    expect(events.map((event) => event.data).at(-1)).toBe("[DONE]");
    expect(contentOf(events.slice(0, -1).map((event) => JSON.parse(event.data)))).toBe("Hello, wörld 👋");
  });

  it.each<[string, SseOptions]>([
    ["plain", {}],
    ["split every 3 bytes", { splitEvery: 3 }],
    ["split every byte, CRLF, comments", { splitEvery: 1, crlf: true, comments: true }],
  ])("streams events intact (%s)", async (_name, options) => {
    const sent = chunks(2, "m");
    provider.reply(sse(sent, options));
    const response = await post({ model: "m", stream: true });
    expect(response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    const raw = response.clone().text();
    const events = await readEvents(response);
    expect(events.map((event) => event.data)).toEqual([...sent.map((chunk) => JSON.stringify(chunk)), "[DONE]"]);
    expect(provider.requests[0].sentAt).toHaveLength(sent.length + 1);
    if (options.comments) expect((await raw).split(": keep-alive\r\n\r\ndata: ")).toHaveLength(sent.length + 2);
  });

  it("spaces events by intervalMs and timestamps them", async () => {
    provider.reply(sse(chunks(1), { intervalMs: 30, done: false }));
    await readEvents(await post({ model: "m", stream: true }));
    const [first, second] = provider.requests[0].sentAt;
    expect(second - first).toBeGreaterThanOrEqual(25);
  });

  it("resets the stream after errorAfter events", async () => {
    provider.reply(sse(chunks(4), { errorAfter: 2 }));
    const response = await post({ model: "m", stream: true });
    const received: string[] = [];
    await expect(
      (async () => {
        for await (const event of parseSse(response.body!, 1024 * 1024)) received.push(event.data);
      })(),
    ).rejects.toThrow();
    expect(received).toHaveLength(2);
  });

  it("delays an answer", async () => {
    provider.reply(delay(60, json(200, { ok: true })));
    const started = Date.now();
    expect(await (await post({ model: "m" })).json()).toEqual({ ok: true });
    expect(Date.now() - started).toBeGreaterThanOrEqual(55);
  });

  it("sees the client hang up", async () => {
    provider.reply(hang());
    const controller = new AbortController();
    const answer = post({ model: "m" }, { signal: controller.signal }).catch((reason: unknown) => reason);
    const [request] = await provider.waitForRequests(1);
    expect(provider.openSockets).toBeGreaterThan(0);
    const abortedAt = Date.now();
    controller.abort();
    expect(await request.closed).toBeGreaterThanOrEqual(abortedAt);
    expect(await request.done).toBe("client-closed");
    expect(await answer).toMatchObject({ name: "AbortError" });
  });

  it("close() ends hanging requests and every socket", async () => {
    const own = await startFakeProvider({ prefix: "/api" });
    own.reply(hang());
    const answer = fetch(`${own.url}/chat/completions`, { method: "POST", body: "{}" }).catch((reason: unknown) => reason);
    const [request] = await own.waitForRequests(1);
    expect(request.path).toBe("/api/chat/completions");
    await own.close();
    expect(await answer).toBeInstanceOf(TypeError);
    expect(await request.done).toBe("provider-closed");
    expect(own.openSockets).toBe(0);
  });
});
