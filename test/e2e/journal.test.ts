import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { openStore } from "../../src/store/open.js";
import type { JournalEntry, Store } from "../../src/store/store.js";
import { callStream, createProtocolClient, PROTOCOLS, sendUndecodable, STREAM_PROTOCOLS } from "../support/clients.js";
import { chunks, completion, contentOf, errorBody, json, sse, startFakeProvider, type FakeProvider } from "../support/fake-provider.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

// Every admitted call on every protocol and both RPCs is journaled once, off the call path,
// with what SPEC section 7 lists; refused calls are not; no secret is ever stored.
const PROVIDER_KEY = "sk-provider-secret-0123456789";
let provider: FakeProvider;
let gateway: TestGateway;
let guarded: TestGateway;
let folder: string;
let store: Store;
let apiKey: string;

beforeAll(async () => {
  provider = await startFakeProvider();
  folder = mkdtempSync(join(tmpdir(), "passthrough-journal-e2e-"));
  const database = { url: `sqlite:${join(folder, "journal.db")}` };
  const providers = [{ name: "local", baseUrl: provider.url, retries: 0, apiKeyEnv: "LOCAL_KEY" }];
  const env = { LOCAL_KEY: PROVIDER_KEY };
  gateway = await startTestGateway({ providers, database, journal: { spoolDir: join(folder, "spool") } }, env);
  guarded = await startTestGateway({ providers, database, journal: { spoolDir: join(folder, "spool-guarded") } }, env, undefined, { authenticate: true });
  apiKey = guarded.firstKey!;
  store = await openStore(database.url);
});
afterAll(async () => {
  await gateway?.close();
  await guarded?.close();
  await store?.close();
  await provider?.close();
});
afterEach(() => provider.clear());

/** The entry of this key, once the writer has put it in the database. */
async function entryOf(journalKey: string | null | undefined): Promise<JournalEntry> {
  expect(journalKey).toMatch(/^[0-9a-f]{64}$/);
  for (let waited = 0; waited < 5000; waited += 20) {
    const entry = await store.getJournalEntry(journalKey!);
    if (entry !== undefined) return entry;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`no journal entry for ${journalKey}`);
}

const parsed = (text: string | null) => (text === null ? null : JSON.parse(text));

describe.each(PROTOCOLS)("the journal of a Passthrough call over %s", (protocol) => {
  it("holds a success: principal, provider, bodies, statuses, duration and usage", async () => {
    provider.reply(json(200, completion("m")));
    const client = createProtocolClient(protocol, gateway.url);
    const result = await client.unary("local", { model: "m", messages: [] });
    client.close();
    const entry = await entryOf(result.headers["x-journal-key"]);
    expect(entry).toMatchObject({ principal: "anonymous", provider: "local", protocol, status: 200, grpcCode: 0, upstreamStatus: 200, error: null });
    expect(entry).toMatchObject({ promptTokens: 9, completionTokens: 12, totalTokens: 21 });
    expect(parsed(entry.requestBody)).toEqual({ model: "m", messages: [] });
    expect(parsed(entry.responseBody)).toEqual(completion("m"));
    expect(entry.durationMs).toBeGreaterThan(0);
    expect(Math.abs(entry.time.getTime() - Date.now())).toBeLessThan(60_000);
  });

  it("holds an upstream failure with the provider's status and the caller's code", async () => {
    provider.reply(json(500, errorBody("down")));
    const client = createProtocolClient(protocol, gateway.url);
    const result = await client.unary("local", { model: "m" });
    client.close();
    const entry = await entryOf(result.headers["x-journal-key"]);
    expect(entry).toMatchObject({ upstreamStatus: 500, grpcCode: 14, error: result.message });
    if (protocol === "rest") expect(entry.status).toBe(502);
  });

  it("holds an unknown provider, with the name asked for", async () => {
    const client = createProtocolClient(protocol, gateway.url);
    const result = await client.unary("nobody", { model: "m" });
    client.close();
    const entry = await entryOf(result.headers["x-journal-key"]);
    expect(entry).toMatchObject({ provider: "nobody", grpcCode: 5, upstreamStatus: null });
  });

  it("holds a body that did not decode, before any handler ran", async () => {
    const answer = await sendUndecodable(protocol, gateway.url);
    const entry = await entryOf(answer.journalKey);
    expect(entry.grpcCode).toBe(answer.code);
    expect(entry.grpcCode).not.toBe(0);
    if (protocol === "rest") expect(entry.requestBody).toBe("{not json");
  });

  it("holds an authenticated call under its key's id, and never one that was refused", async () => {
    provider.reply(json(200, completion("m")));
    const client = createProtocolClient(protocol, guarded.url, { authorization: `Bearer ${apiKey}` });
    const result = await client.unary("local", { model: "m" });
    client.close();
    const entry = await entryOf(result.headers["x-journal-key"]);
    expect(entry.principal).toBe(apiKey.split("_")[1]);

    const refusedClient = createProtocolClient(protocol, guarded.url, { authorization: "Bearer ptk_aaaaaaaaaaaaaaaa_nope" });
    const refused = await refusedClient.unary("local", { model: "m" });
    refusedClient.close();
    expect(refused.code).toBe("unauthenticated");
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await store.getJournalEntry(refused.headers["x-journal-key"])).toBeUndefined();
  });
});

describe.each(STREAM_PROTOCOLS)("the journal of a PassthroughStream over %s", (protocol) => {
  it("holds the assembled result of a whole stream and its usage", async () => {
    provider.reply(sse(chunks(3, "m")));
    let journalKey: string | undefined;
    await callStream(protocol, gateway.url, "local", { model: "m" }, { onHeaders: (headers) => (journalKey = headers["x-journal-key"]) });
    const entry = await entryOf(journalKey);
    const body = parsed(entry.responseBody) as { choices: { message: { content: string }; finish_reason: string }[] };
    expect(body.choices[0].message.content).toBe(contentOf(chunks(3, "m")));
    expect(body.choices[0].finish_reason).toBe("stop");
    expect(entry).toMatchObject({ grpcCode: 0, totalTokens: 21 });
  });

  it("holds what was relayed of a stream cancelled midway", async () => {
    provider.reply(sse(chunks(20, "m"), { intervalMs: 50 }));
    let journalKey: string | undefined;
    let received: unknown[] = [];
    const result = await callStream(protocol, gateway.url, "local", { model: "m" }, {
      onHeaders: (headers) => (journalKey = headers["x-journal-key"]),
      onChunk: (index, controller) => index === 1 && controller.abort(),
    });
    received = result.chunks;
    const entry = await entryOf(journalKey);
    expect(entry.grpcCode).toBe(1);
    const content = (parsed(entry.responseBody) as { choices: { message: { content: string } }[] }).choices[0].message.content;
    expect(content.startsWith(contentOf(received))).toBe(true);
    expect(content.length).toBeLessThan(contentOf(chunks(20, "m")).length);
  });
});

describe("the journal of a REST stream", () => {
  it("holds the assembled result of the relayed events", async () => {
    provider.reply(sse(chunks(3, "m")));
    const response = await fetch(`${gateway.url}/api/v1/prompts/passthrough/local/`, { method: "POST", body: '{"stream":true}' });
    await response.text();
    const entry = await entryOf(response.headers.get("x-journal-key"));
    expect(entry.requestBody).toBe('{"stream":true}');
    const body = parsed(entry.responseBody) as { choices: { message: { content: string } }[] };
    expect(body.choices[0].message.content).toBe(contentOf(chunks(3, "m")));
  });
});

describe("what the journal never stores", () => {
  it("holds neither the caller's credential nor the provider's key, in any file of the database", async () => {
    provider.reply(json(200, completion("m")));
    const client = createProtocolClient("rest", guarded.url, { authorization: `Bearer ${apiKey}` });
    const result = await client.unary("local", { model: "m" });
    client.close();
    await entryOf(result.headers["x-journal-key"]);
    expect(provider.requests.at(-1)?.headers.authorization).toBe(`Bearer ${PROVIDER_KEY}`);
    const secret = apiKey.slice(`ptk_${apiKey.split("_")[1]}_`.length);
    for (const file of readdirSync(folder).filter((name) => name.startsWith("journal.db"))) {
      const bytes = readFileSync(join(folder, file)).toString("latin1");
      expect(bytes).not.toContain(secret);
      expect(bytes).not.toContain(PROVIDER_KEY);
      expect(bytes).not.toContain("authorization");
    }
  });
});
