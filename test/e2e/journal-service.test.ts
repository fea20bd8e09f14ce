import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newApiKey } from "../../src/auth/api-keys.js";
import { ANONYMOUS_PRINCIPAL } from "../../src/call/record.js";
import { openStore } from "../../src/store/open.js";
import type { JournalEntry, Store } from "../../src/store/store.js";
import { createProtocolClient, PROTOCOLS } from "../support/clients.js";
import { completion, json, startFakeProvider, type FakeProvider } from "../support/fake-provider.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";
import { createJournalClient, type JournalClient, type JournalResult } from "../support/journal-clients.js";

// SPEC sections 2 and 7 on every protocol: a principal reads back its own journal entries, and
// another principal's entry is NOT_FOUND exactly as one that does not exist. Entries are written
// into the gateway's store directly: the journal's writer is not part of this suite.
let provider: FakeProvider;
let gateway: TestGateway;
let store: Store;
const dir = mkdtempSync(join(tmpdir(), "passthrough-journal-"));
const credentials: Record<"alice" | "bob" | "carol" | "many", { key: string; id: string }> = {} as never;

const T0 = Date.UTC(2030, 0, 1);
let serial = 0;
/** A fresh journal key: 64 lowercase hex characters. */
const journalKey = () => (++serial).toString(16).padStart(64, "0");

function entry(principal: string, seconds: number, overrides: Partial<JournalEntry> = {}): JournalEntry {
  return {
    key: journalKey(),
    time: new Date(T0 + seconds * 1000),
    principal,
    provider: "local",
    protocol: "rest",
    requestBody: JSON.stringify({ model: "m", messages: [{ role: "user", content: `at ${seconds}` }] }),
    responseBody: JSON.stringify({ choices: [{ message: { role: "assistant", content: "hi" } }], usage: { total_tokens: 3 } }),
    status: 200,
    grpcCode: 0,
    upstreamStatus: 200,
    durationMs: 12.5,
    promptTokens: 1,
    completionTokens: 2,
    totalTokens: 3,
    error: null,
    ...overrides,
  };
}

/** Alice's entries, oldest first: two share a time (ordered by key), one holds every absent field. */
let alices: JournalEntry[];
let sparse: JournalEntry;
let bobs: JournalEntry[];
let carols: JournalEntry[];
const MANY = 1050;
/** A journal key no entry has. */
const missing = "f".repeat(64);

beforeAll(async () => {
  provider = await startFakeProvider();
  provider.setDefault(json(200, completion("m")));
  const url = `sqlite:${join(dir, "passthrough.db")}`;
  store = await openStore(url);
  for (const [name, allowedProviders] of [["alice"], ["bob"], ["carol", ["other"]], ["many"]] as const) {
    const material = newApiKey();
    await store.createKey({ id: material.id, digest: material.digest, name, allowedProviders });
    credentials[name] = { key: material.key.reveal(), id: material.id };
  }
  const alice = credentials.alice.id;
  sparse = entry(alice, 3, {
    provider: null, protocol: "grpc", requestBody: "{not json", responseBody: null, status: 400, grpcCode: 3, upstreamStatus: null,
    durationMs: 1, promptTokens: null, completionTokens: null, totalTokens: null, error: "the body is not valid JSON",
  });
  alices = [
    entry(alice, 1, { provider: "other" }),
    entry(alice, 2),
    sparse,
    entry(alice, 4, { provider: "other", protocol: "grpc-web" }),
    entry(alice, 5, { protocol: "connect" }),
    entry(alice, 5, { provider: "other" }),
    entry(alice, 7, { time: new Date(T0 + 7250), upstreamStatus: 429, status: 429, grpcCode: 8, error: "rate limited" }),
  ];
  bobs = [entry(credentials.bob.id, 2), entry(credentials.bob.id, 6, { provider: "other" })];
  carols = [entry(credentials.carol.id, 1, { provider: "local" })];
  const many = Array.from({ length: MANY }, (_, i) => entry(credentials.many.id, i, { requestBody: "{}", responseBody: "{}" }));
  await store.writeJournal([...alices, ...bobs, ...carols, ...many, entry(ANONYMOUS_PRINCIPAL, 9)]);
  gateway = await startTestGateway(
    { providers: [{ name: "local", baseUrl: provider.url }, { name: "other", baseUrl: provider.url }], database: { url } },
    {},
    undefined,
    { authenticate: true },
  );
});
afterAll(async () => {
  await gateway?.close();
  await store?.close();
  await provider?.close();
});

const bearer = (name: keyof typeof credentials) => ({ authorization: `Bearer ${credentials[name].key}` });
const keysOf = (result: JournalResult) => ((result.body as { entries: Array<{ key: string }> }).entries ?? []).map((e) => e.key);
const newestFirst = (entries: JournalEntry[]) => [...entries].sort((a, b) => b.time.getTime() - a.time.getTime() || (a.key < b.key ? 1 : -1)).map((e) => e.key);

/** Every page of a listing, following next_page_token to the end. */
async function allPages(client: JournalClient, params: { pageSize?: number; providerName?: string }) {
  const pages: string[][] = [];
  let pageToken: string | undefined;
  do {
    const page = await client.list({ ...params, pageToken });
    expect(page.ok, page.message).toBe(true);
    pages.push(keysOf(page));
    pageToken = (page.body as { nextPageToken: string }).nextPageToken || undefined;
  } while (pageToken !== undefined && pages.length < 100);
  return pages;
}

describe.each(PROTOCOLS)("JournalService over %s", (protocol) => {
  const clients: JournalClient[] = [];
  const client = (headers: Record<string, string> = {}) => {
    const made = createJournalClient(protocol, gateway.url, headers);
    clients.push(made);
    return made;
  };
  afterAll(() => clients.forEach((c) => c.close()));

  it("gives each principal its own entry, with every field", async () => {
    const newest = alices[alices.length - 1];
    const got = await client(bearer("alice")).get(newest.key);
    expect(got.ok, got.message).toBe(true);
    expect(got.headers["x-journal-key"]).toMatch(/^[0-9a-f]{64}$/);
    expect(got.body).toEqual({
      key: newest.key,
      time: "2030-01-01T00:00:07.250Z",
      principal: credentials.alice.id,
      providerName: "local",
      protocol: "rest",
      requestBody: { model: "m", messages: [{ role: "user", content: "at 7" }] },
      responseBody: { choices: [{ message: { role: "assistant", content: "hi" } }], usage: { total_tokens: 3 } },
      httpStatus: 429,
      grpcCode: 8,
      grpcCodeName: "resource_exhausted",
      upstreamStatus: 429,
      durationMs: 12.5,
      usage: { promptTokens: 1, completionTokens: 2, totalTokens: 3 },
      error: "rate limited",
    });
    const bobs0 = await client(bearer("bob")).get(bobs[0].key);
    expect(bobs0.body).toMatchObject({ key: bobs[0].key, principal: credentials.bob.id });
  });

  it("keeps what was not valid JSON as text, and leaves absent facts unset", async () => {
    const got = await client(bearer("alice")).get(sparse.key);
    expect(got.body).toEqual({
      key: sparse.key,
      time: "2030-01-01T00:00:03Z",
      principal: credentials.alice.id,
      providerName: "",
      protocol: "grpc",
      requestText: "{not json",
      httpStatus: 400,
      grpcCode: 3,
      grpcCodeName: "invalid_argument",
      durationMs: 1,
      error: "the body is not valid JSON",
    });
  });

  it("answers another principal's entry NOT_FOUND, exactly as a key that does not exist", async () => {
    const alice = client(bearer("alice"));
    const others = await alice.get(bobs[0].key);
    const nobody = await alice.get(missing);
    expect(others).toMatchObject({ ok: false, code: "not_found", message: "journal entry not found" });
    const comparable = ({ headers, body, ...rest }: JournalResult) => ({
      ...rest,
      body: body && { ...(body as object), metadata: {} },
      headers: Object.keys(headers).filter((name) => name !== "date").sort(),
    });
    expect(comparable(others)).toEqual(comparable(nobody));
    if (protocol === "rest") expect(others.status).toBe(404);
    // And bob cannot read alice's.
    expect((await client(bearer("bob")).get(alices[0].key)).code).toBe("not_found");
  });

  it.each([
    ["too short", "abc"],
    ["upper case", "A".repeat(64)],
    ["not hex", "g".repeat(64)],
  ])("refuses a journal key that is %s as INVALID_ARGUMENT", async (_, key) => {
    const result = await client(bearer("alice")).get(key);
    expect(result).toMatchObject({ ok: false, code: "invalid_argument", message: "journal_key must be 64 lowercase hex characters" });
    if (protocol === "rest") expect(result.status).toBe(400);
  });

  it.each([1, 3, 7, 50])("lists the caller's entries newest first, page by page to the end, page size %i", async (pageSize) => {
    const pages = await allPages(client(bearer("alice")), { pageSize });
    expect(pages.flat()).toEqual(newestFirst(alices));
    expect(pages).toHaveLength(Math.ceil(alices.length / pageSize));
    for (const page of pages) expect(page.length).toBeLessThanOrEqual(pageSize);
  });

  it("filters by provider, normalized, and pages within the filter", async () => {
    const pages = await allPages(client(bearer("alice")), { pageSize: 2, providerName: " Other " });
    expect(pages.flat()).toEqual(newestFirst(alices.filter((e) => e.provider === "other")));
    expect(keysOf(await client(bearer("alice")).list({ providerName: "nobody" }))).toEqual([]);
  });

  it("lets a key restricted to one provider read its entries of another", async () => {
    const carol = client(bearer("carol"));
    expect((await carol.get(carols[0].key)).ok).toBe(true);
    expect(keysOf(await carol.list({ providerName: "local" }))).toEqual([carols[0].key]);
    expect(keysOf(await carol.list())).toEqual([carols[0].key]);
  });

  it("answers 50 entries by default and at most 1000, with a token for the rest; a negative page size is INVALID_ARGUMENT", async () => {
    const many = client(bearer("many"));
    const first = await many.list();
    expect(keysOf(first)).toHaveLength(50);
    expect((first.body as { nextPageToken: string }).nextPageToken).not.toBe("");
    const clamped = await many.list({ pageSize: 5000 });
    expect(keysOf(clamped)).toHaveLength(1000);
    const rest = await many.list({ pageSize: 5000, pageToken: (clamped.body as { nextPageToken: string }).nextPageToken });
    expect(keysOf(rest)).toHaveLength(MANY - 1000);
    expect(rest.body).toMatchObject({ nextPageToken: "" });
    expect(new Set([...keysOf(clamped), ...keysOf(rest)]).size).toBe(MANY);
    const negative = await many.list({ pageSize: -1 });
    expect(negative).toMatchObject({ ok: false, code: "invalid_argument", message: "page_size must not be negative" });
    if (protocol === "rest") expect(negative.status).toBe(400);
  });

  it("refuses a page token it did not make, or made for another filter, as INVALID_ARGUMENT", async () => {
    const alice = client(bearer("alice"));
    expect(await alice.list({ pageToken: "not a token" })).toMatchObject({ ok: false, code: "invalid_argument" });
    const page = await alice.list({ pageSize: 1 });
    const pageToken = (page.body as { nextPageToken: string }).nextPageToken;
    expect(await alice.list({ pageToken, providerName: "local" })).toMatchObject({ ok: false, code: "invalid_argument" });
  });

  it("lists only the caller's entries: nothing of another principal's or the anonymous caller's", async () => {
    expect(keysOf(await client(bearer("bob")).list())).toEqual(newestFirst(bobs));
  });

  it.each([
    ["no credential", {}],
    ["an unknown key", { authorization: `Bearer ptk_${"a".repeat(16)}_${"A".repeat(43)}` }],
  ])("refuses %s as UNAUTHENTICATED before reading anything", async (_, headers) => {
    for (const result of [await client(headers).get(alices[0].key), await client(headers).list()]) {
      expect(result).toMatchObject({ ok: false, code: "unauthenticated" });
      expect(result.headers["www-authenticate"]).toMatch(/^Bearer realm="passthrough"/);
      if (protocol === "rest") expect(result.status).toBe(401);
      expect(JSON.stringify(result)).not.toContain(alices[0].requestBody!);
    }
  });
});

describe("JournalService over REST", () => {
  const get = (path: string, headers: Record<string, string> = bearer("alice")) => fetch(`${gateway.url}${path}`, { headers });

  it("answers errors in the REST envelope of SPEC section 8, with the call's journal key", async () => {
    const response = await get(`/api/v1/prompts/journal/${bobs[0].key}`);
    expect(response.status).toBe(404);
    expect(response.headers.get("content-type")).toBe("application/json");
    const journalKey = response.headers.get("x-journal-key");
    expect(await response.json()).toEqual({
      error: { errorClass: "NotFound", description: "journal entry not found", status: 404, code: "not_found" },
      api: "smarter.sh/v1",
      metadata: { key: journalKey },
    });
    const refused = await get("/api/v1/prompts/journal", {});
    expect(refused.status).toBe(401);
    expect(await refused.json()).toMatchObject({ error: { errorClass: "Unauthenticated", status: 401, code: "unauthenticated" }, api: "smarter.sh/v1" });
  });

  it("writes an empty page with its defaults, and accepts a trailing slash", async () => {
    const empty = await get("/api/v1/prompts/journal?provider_name=nobody");
    expect(await empty.json()).toEqual({ entries: [], nextPageToken: "" });
    const slash = await get("/api/v1/prompts/journal/?page_size=2");
    expect(slash.status).toBe(200);
    expect(((await slash.json()) as { entries: unknown[] }).entries).toHaveLength(2);
    const slashed = await get(`/api/v1/prompts/journal/${alices[0].key}/`);
    expect(((await slashed.json()) as { key: string }).key).toBe(alices[0].key);
  });

  it("is no call to a provider in the metrics: journal reads are counted apart", async () => {
    const call = await createProtocolClient("rest", gateway.url, bearer("alice")).unary("local", { model: "m" });
    expect(call.ok).toBe(true);
    const text = await (await fetch(`${gateway.url}/metrics`)).text();
    const lines = (name: string) => text.split("\n").filter((line) => line.startsWith(`${name}{`));
    expect(lines("passthrough_calls_total")).toEqual(['passthrough_calls_total{protocol="rest",provider="local",code="ok"} 1']);
    expect(lines("passthrough_journal_reads_total")).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^passthrough_journal_reads_total\{protocol="grpc",method="GetJournalEntry",code="ok"\} \d+$/),
        expect.stringMatching(/^passthrough_journal_reads_total\{protocol="rest",method="ListJournalEntries",code="unauthenticated"\} \d+$/),
      ]),
    );
  });
});

describe("JournalService without authentication", () => {
  let open: TestGateway;
  beforeAll(async () => {
    open = await startTestGateway({ database: { url: `sqlite:${join(dir, "passthrough.db")}` } });
  });
  afterAll(() => open?.close());

  it("serves the anonymous principal's entries, and no one else's", async () => {
    const client = createJournalClient("connect", open.url);
    const listed = await client.list();
    expect(listed.body).toMatchObject({ entries: [{ principal: ANONYMOUS_PRINCIPAL }], nextPageToken: "" });
    expect((await client.get(alices[0].key)).code).toBe("not_found");
  });
});
