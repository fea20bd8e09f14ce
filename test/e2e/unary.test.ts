import OpenAI from "openai";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createProtocolClient, PROTOCOLS, type ProtocolClient } from "../support/clients.js";
import { completion, errorBody, hang, json, reset, startFakeProvider, text, type FakeProvider } from "../support/fake-provider.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";
import { NO_CACHE } from "../support/no-cache.js";

const PROVIDER_KEY = "sk-provider-secret-0123456789";

let provider: FakeProvider;
let gateway: TestGateway;

beforeAll(async () => {
  provider = await startFakeProvider();
  gateway = await startTestGateway(
    {
      providers: [
        { name: "local", baseUrl: provider.url, apiKeyEnv: "LOCAL_KEY", retries: 0 },
        { name: "slow", baseUrl: provider.url, apiKeyEnv: "LOCAL_KEY", retries: 0, timeoutMs: 300 },
      ],
    },
    { LOCAL_KEY: PROVIDER_KEY },
  );
});

afterAll(async () => {
  await gateway?.close();
  await provider?.close();
});

afterEach(() => provider.clear());

/** A chat-completion body with fields no schema knows, numbers and unicode. */
const callerBody = {
  model: "gpt-4o-mini",
  messages: [{ role: "user", content: "Grüße, 世界 \u2028 \"quoted\"" }],
  temperature: 0.25,
  x_vendor_extension: { nested: [1, 2.5, true, null, "s"] },
  metadata: { caller: "test" },
};

describe.each(PROTOCOLS)("unary passthrough over %s", (protocol) => {
  let client: ProtocolClient;
  beforeAll(() => {
    client = createProtocolClient(protocol, gateway.url);
  });
  afterAll(() => client.close());

  it("forwards the body with unknown fields unchanged and returns the answer unchanged plus api and metadata", async () => {
    const answer = { ...completion("gpt-4o-mini"), system_fingerprint: "fp_1", provider_extra: { a: [1, "b"] } };
    provider.reply(json(200, answer));
    const result = await client.unary("local", callerBody);

    expect(result.ok).toBe(true);
    const [received] = provider.requests;
    expect(received.path).toBe("/v1/chat/completions");
    expect(received.json).toEqual(callerBody);
    expect(received.headers.authorization).toBe(`Bearer ${PROVIDER_KEY}`);
    const journalKey = result.headers["x-journal-key"];
    expect(journalKey).toMatch(/^[0-9a-f]{64}$/);
    expect(result.body).toEqual({ ...answer, api: "smarter.sh/v1", metadata: { key: journalKey } });
    expect(result.headers).toMatchObject(NO_CACHE);
  });

  it("normalizes the provider name as Smarter does", async () => {
    provider.reply(json(200, completion("m")));
    const result = await client.unary("LOCAL", { model: "m" });
    expect(result.ok).toBe(true);
  });

  // Each row of SPEC section 8 that a unary call can reach.
  const rows: Array<{ situation: string; name?: string; reply?: Parameters<FakeProvider["reply"]>[0]; code: string; status: number; upstream?: unknown; retryAfter?: string }> = [
    { situation: "unknown provider", name: "nope", code: "not_found", status: 404 },
    { situation: "upstream 400", reply: json(400, errorBody("bad model")), code: "invalid_argument", status: 400, upstream: errorBody("bad model") },
    { situation: "upstream 404", reply: json(404, errorBody("no such model")), code: "not_found", status: 404, upstream: errorBody("no such model") },
    { situation: "upstream 422", reply: json(422, errorBody("unprocessable")), code: "invalid_argument", status: 422, upstream: errorBody("unprocessable") },
    { situation: "upstream rejected the gateway's key (401)", reply: json(401, errorBody(`Incorrect API key provided: ${PROVIDER_KEY}`)), code: "internal", status: 502 },
    { situation: "upstream rejected the gateway's key (403)", reply: json(403, errorBody("forbidden")), code: "internal", status: 502 },
    { situation: "upstream 429", reply: json(429, errorBody("slow down"), { "retry-after": "30" }), code: "resource_exhausted", status: 429, upstream: errorBody("slow down"), retryAfter: "30" },
    { situation: "upstream 500", reply: json(500, errorBody("boom")), code: "unavailable", status: 502, upstream: errorBody("boom") },
    { situation: "upstream 503", reply: text(503, "<html>down</html>", "text/html"), code: "unavailable", status: 502, upstream: "<html>down</html>" },
    { situation: "upstream reset", reply: reset(), code: "unavailable", status: 502 },
    { situation: "upstream 200 that is not JSON", reply: text(200, "<html>hello</html>", "text/html"), code: "unavailable", status: 502 },
    { situation: "upstream 200 JSON that is not an object", reply: json(200, [1, 2]), code: "unavailable", status: 502 },
    { situation: "upstream timeout", name: "slow", reply: hang(), code: "deadline_exceeded", status: 504 },
  ];

  it.each(rows)("$situation → $code", async ({ name = "local", reply, code, status, upstream, retryAfter }) => {
    if (reply) provider.reply(reply);
    const result = await client.unary(name, { model: "m", messages: [] });
    expect(result.ok).toBe(false);
    expect(result.code).toBe(code);
    expect(result.message).toBeTruthy();
    expect(result.message).not.toContain(PROVIDER_KEY);
    expect(JSON.stringify(result)).not.toMatch(/ at .*\.(ts|js):\d+|node_modules|\/work\//);
    if (protocol === "rest") {
      expect(result.status).toBe(status);
      const envelope = result.body as { error: Record<string, unknown>; api: string; metadata: { key: string } };
      expect(envelope.error).toMatchObject({ status, code });
      expect(typeof envelope.error.errorClass).toBe("string");
      expect(envelope.error.description).toBe(result.message);
      expect(envelope.api).toBe("smarter.sh/v1");
      expect(envelope.metadata.key).toBe(result.headers["x-journal-key"]);
      if (upstream !== undefined) expect(envelope.error.upstream).toEqual(upstream);
      if (retryAfter) expect(result.headers["retry-after"]).toBe(retryAfter);
    }
    expect(result.headers).toMatchObject(NO_CACHE);
    expect(JSON.stringify(result)).not.toContain(PROVIDER_KEY);
  });

  it("refuses a body over the limit with RESOURCE_EXHAUSTED and keeps serving", async () => {
    const result = await client.unary("local", { model: "m", padding: "x".repeat(9 * 1024 * 1024) });
    expect(result.ok).toBe(false);
    expect(result.code).toBe("resource_exhausted");
    if (protocol === "rest") expect(result.status).toBe(413);
    expect(provider.requests).toHaveLength(0);
    provider.reply(json(200, completion("m")));
    expect((await client.unary("local", { model: "m" })).ok).toBe(true);
  });
});

describe("unary passthrough over RPC protocols", () => {
  it.each(["grpc", "grpc-web", "connect"] as const)("%s: stream: true on Passthrough is INVALID_ARGUMENT naming PassthroughStream", async (protocol) => {
    const client = createProtocolClient(protocol, gateway.url);
    const result = await client.unary("local", { model: "m", stream: true });
    client.close();
    expect(result.code).toBe("invalid_argument");
    expect(result.message).toContain("PassthroughStream");
    expect(provider.requests).toHaveLength(0);
  });
});

describe("REST", () => {
  const restUrl = (name: string) => `${gateway.url}/api/v1/prompts/passthrough/${name}/`;

  it("forwards the received bytes as they are and answers the provider's bytes plus api and metadata", async () => {
    const sent = '{ "model":"m",  "messages":[], "n": 1.50, "big": 12345678901234567890, "s":"\\u00e9" }';
    const answer = '{"id":"x","big":98765432109876543210,"f":1.0,"s":"\\u00e9"}';
    provider.reply(text(200, answer, "application/json"));
    const response = await fetch(restUrl("local"), { method: "POST", headers: { "content-type": "application/json" }, body: sent });
    expect(response.status).toBe(200);
    expect(provider.requests[0].body.toString()).toBe(sent);
    const key = response.headers.get("x-journal-key");
    expect(await response.text()).toBe(`{"id":"x","big":98765432109876543210,"f":1.0,"s":"\\u00e9","api":"smarter.sh/v1","metadata":{"key":"${key}"}}`);
  });

  it("never forwards the caller's authorization or other headers", async () => {
    provider.reply(json(200, completion("m")));
    await fetch(restUrl("local"), {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Token caller-secret", cookie: "session=1", "x-custom": "1" },
      body: "{}",
    });
    const { headers } = provider.requests[0];
    expect(headers.authorization).toBe(`Bearer ${PROVIDER_KEY}`);
    expect(JSON.stringify(headers)).not.toContain("caller-secret");
    expect(headers.cookie).toBeUndefined();
    expect(headers["x-custom"]).toBeUndefined();
  });

  it("serves the documented path without its trailing slash and the chat/completions binding", async () => {
    provider.reply(json(200, completion("m")), json(200, completion("m")));
    const a = await fetch(restUrl("local").slice(0, -1), { method: "POST", body: "{}" });
    const b = await fetch(`${gateway.url}/api/v1/prompts/passthrough/local/chat/completions`, { method: "POST", body: "{}" });
    expect([a.status, b.status]).toEqual([200, 200]);
  });

  // `routed: false`: the path matches no route, so the request is no call: it has no record,
  // no journal entry, and so no journal key.
  const badInputs: Array<{ name: string; path?: string; body: string | Uint8Array; status: number; code: string; routed?: false }> = [
    { name: "invalid JSON", body: '{"model": ', status: 400, code: "invalid_argument" },
    { name: "a JSON array", body: "[1,2]", status: 400, code: "invalid_argument" },
    { name: "a JSON number", body: "42", status: 400, code: "invalid_argument" },
    { name: "a JSON string", body: '"hi"', status: 400, code: "invalid_argument" },
    { name: "null", body: "null", status: 400, code: "invalid_argument" },
    { name: "an empty body", body: "", status: 400, code: "invalid_argument" },
    { name: "a 9 MiB body", body: `{"p":"${"x".repeat(9 * 1024 * 1024)}"}`, status: 413, code: "resource_exhausted" },
    { name: "an unknown provider", path: "/api/v1/prompts/passthrough/nope/", body: "{}", status: 404, code: "not_found" },
    { name: "a provider name with an encoded /", path: "/api/v1/prompts/passthrough/lo%2Fcal/", body: "{}", status: 404, code: "not_found" },
    { name: "a provider name with a /", path: "/api/v1/prompts/passthrough/lo/cal/", body: "{}", status: 404, code: "not_found", routed: false },
    { name: "a provider name of ..", path: "/api/v1/prompts/passthrough/%2E%2E/", body: "{}", status: 404, code: "not_found", routed: false },
    { name: "a provider name with ..", path: "/api/v1/prompts/passthrough/..%2F..%2Fetc/", body: "{}", status: 404, code: "not_found" },
  ];

  it.each(badInputs)("$name → $status, and the server keeps serving", async ({ path, body, status, code, routed }) => {
    const response = await fetch(path ? `${gateway.url}${path}` : restUrl("local"), { method: "POST", headers: { "content-type": "application/json" }, body });
    expect(response.status).toBe(status);
    for (const [name, value] of Object.entries(NO_CACHE)) expect(response.headers.get(name)).toBe(value);
    const envelope = (await response.json()) as { error: { code: string; description: string; status: number }; metadata: { key: string } };
    expect(envelope.error.code).toBe(code);
    expect(envelope.error.status).toBe(status);
    expect(envelope.error.description.length).toBeGreaterThan(5);
    if (routed === false) {
      expect(envelope.metadata).toEqual({});
      expect(response.headers.get("x-journal-key")).toBeNull();
    } else {
      expect(envelope.metadata.key).toMatch(/^[0-9a-f]{64}$/);
      expect(response.headers.get("x-journal-key")).toBe(envelope.metadata.key);
    }
    expect(provider.requests).toHaveLength(0);

    provider.reply(json(200, completion("m")));
    expect((await fetch(restUrl("local"), { method: "POST", body: "{}" })).status).toBe(200);
  });

  it("answers a wrong method with 405 and an Allow header, no-cache", async () => {
    const response = await fetch(restUrl("local"), { method: "GET" });
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toContain("POST");
    expect(response.headers.get("cache-control")).toBe(NO_CACHE["cache-control"]);
  });

  it("answers an unknown path with 404 in the envelope, no-cache", async () => {
    const response = await fetch(`${gateway.url}/nothing/here`, { method: "POST", body: "{}" });
    expect(response.status).toBe(404);
    expect(response.headers.get("cache-control")).toBe(NO_CACHE["cache-control"]);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe("not_found");
  });

  it("puts no-cache headers on a Connect request it cannot decode", async () => {
    const response = await fetch(`${gateway.url}/smarter.prompt.v1.PassthroughService/Passthrough`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{not json",
    });
    expect(response.status).toBeGreaterThanOrEqual(400);
    for (const [name, value] of Object.entries(NO_CACHE)) expect(response.headers.get(name)).toBe(value);
  });
});

describe("the official openai SDK", () => {
  it("works with baseURL set to the passthrough path", async () => {
    provider.reply(json(200, completion("gpt-4o-mini", "Hi from upstream")));
    const openai = new OpenAI({ apiKey: "caller-key", baseURL: `${gateway.url}/api/v1/prompts/passthrough/local`, maxRetries: 0 });
    const result = await openai.chat.completions.create({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] });
    expect(result.choices[0].message.content).toBe("Hi from upstream");
    expect((result as unknown as { api: string }).api).toBe("smarter.sh/v1");
    expect(provider.requests[0].json).toEqual({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] });
    expect(provider.requests[0].headers.authorization).toBe(`Bearer ${PROVIDER_KEY}`);
  });

  it("sees the provider's error status and body", async () => {
    provider.reply(json(400, errorBody("model not found", "invalid_request_error", "model_not_found")));
    const openai = new OpenAI({ apiKey: "caller-key", baseURL: `${gateway.url}/api/v1/prompts/passthrough/local`, maxRetries: 0 });
    const error = await openai.chat.completions.create({ model: "x", messages: [] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(400);
  });
});

describe("logs", () => {
  // Each test makes the calls it reads the logs of, so that it holds when run alone.
  const failedSince = (from: number) =>
    gateway.logs
      .slice(from)
      .map((line) => JSON.parse(line) as { msg: string; code?: string; level: number })
      .filter((entry) => entry.msg === "call failed");

  it("record each failed call once, as JSON, with its code", async () => {
    const from = gateway.logs.length;
    provider.reply(json(503, errorBody("down")));
    const client = createProtocolClient("rest", gateway.url);
    expect((await client.unary("local", { model: "m" })).code).toBe("unavailable");
    expect((await client.unary("nope", { model: "m" })).code).toBe("not_found");
    const failed = failedSince(from);
    expect(failed).toHaveLength(2);
    expect(failed[0]).toMatchObject({ code: "Unavailable", level: 40 });
    expect(failed[1]).toMatchObject({ code: "NotFound", level: 30 });
  });

  it("never contain the provider key, even after the provider quoted it in a 401", async () => {
    const from = gateway.logs.length;
    provider.reply(json(401, errorBody(`Incorrect API key provided: ${PROVIDER_KEY}`)));
    expect((await createProtocolClient("rest", gateway.url).unary("local", { model: "m" })).code).toBe("internal");
    expect(failedSince(from)).toHaveLength(1);
    expect(gateway.logs.join("\n")).not.toContain(PROVIDER_KEY);
  });
});
