import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { newApiKey } from "../../src/auth/api-keys.js";
import { PassthroughService } from "../../src/gen/smarter/prompt/v1/passthrough_pb.js";
import type { SignalEvent } from "../../src/signals/sink.js";
import { openStore } from "../../src/store/open.js";
import type { Store } from "../../src/store/store.js";
import { startFakeProvider, type FakeProvider } from "../support/fake-provider.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";
import { memorySink } from "../support/memory-sink.js";

// ListProviders on every protocol: names only, sorted, filtered to what the key may use, behind
// authentication like every call; it calls no provider, so it is neither journaled nor signalled.
let provider: FakeProvider;
let gateway: TestGateway;
let store: Store;
const keys: Record<string, string> = {};
const events: SignalEvent[] = [];
const sink = memorySink(events);

beforeAll(async () => {
  provider = await startFakeProvider();
  const folder = mkdtempSync(join(tmpdir(), "passthrough-list-providers-"));
  const url = `sqlite:${join(folder, "passthrough.db")}`;
  store = await openStore(url);
  for (const [name, allowedProviders] of [["every", undefined], ["zeta only", ["zeta"]]] as const) {
    const material = newApiKey();
    await store.createKey({ id: material.id, digest: material.digest, name, ...(allowedProviders && { allowedProviders: [...allowedProviders] }) });
    keys[name] = material.key.reveal();
  }
  gateway = await startTestGateway(
    {
      database: { url },
      providers: [
        { name: "zeta", baseUrl: provider.url, apiKeyEnv: "ZETA_KEY" },
        { name: "alpha", baseUrl: `${provider.url}/alpha` },
      ],
    },
    { ZETA_KEY: "sk-zeta-secret" },
    undefined,
    { authenticate: true, signalSinks: [sink] },
  );
});
afterAll(async () => {
  await gateway?.close();
  await store?.close();
  await provider?.close();
});
afterEach(() => {
  events.length = 0;
});

const transports: Record<string, (url: string) => Transport> = {
  grpc: (baseUrl) => createGrpcTransport({ baseUrl }),
  "grpc-web": (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "1.1" }),
  connect: (baseUrl) => createConnectTransport({ baseUrl, httpVersion: "1.1" }),
};
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

describe.each(Object.keys(transports))("ListProviders over %s", (protocol) => {
  const list = (headers: Record<string, string>) => createClient(PassthroughService, transports[protocol](gateway.url)).listProviders({}, { headers });

  it("names the enabled providers, sorted, the built-in ollama among them", async () => {
    const response = await list(bearer(keys.every));
    expect(response.providers.map((p) => p.name)).toEqual(["alpha", "ollama", "zeta"]);
  });

  it("names only the providers a restricted key may use, rather than refusing it", async () => {
    const response = await list(bearer(keys["zeta only"]));
    expect(response.providers.map((p) => p.name)).toEqual(["zeta"]);
  });

  it("is UNAUTHENTICATED without a key", async () => {
    const error = await list({}).then(
      () => undefined,
      (e: unknown) => ConnectError.from(e),
    );
    expect(error?.code).toBe(Code.Unauthenticated);
  });
});

describe("ListProviders over REST", () => {
  it("is GET /api/v1/prompts/providers, names only: no base URL and no credential", async () => {
    const response = await fetch(`${gateway.url}/api/v1/prompts/providers`, { headers: bearer(keys.every) });
    expect(response.status).toBe(200);
    expect(response.headers.get("x-journal-key")).toMatch(/^[0-9a-f]{64}$/);
    const text = await response.text();
    expect(JSON.parse(text)).toEqual({ providers: [{ name: "alpha" }, { name: "ollama" }, { name: "zeta" }] });
    expect(text).not.toContain("127.0.0.1");
    expect(text).not.toContain("sk-zeta-secret");
  });

  it("is 401 without a key", async () => {
    const response = await fetch(`${gateway.url}/api/v1/prompts/providers`);
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toMatch(/^Bearer /);
  });

  it("calls no provider and is neither journaled nor signalled", async () => {
    const response = await fetch(`${gateway.url}/api/v1/prompts/providers`, { headers: bearer(keys.every) });
    const journalKey = response.headers.get("x-journal-key")!;
    await response.text();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await store.getJournalEntry(journalKey)).toBeUndefined();
    expect(events.filter((event) => event.journal_key === journalKey)).toEqual([]);
    expect(provider.requests).toHaveLength(0);
  });

  it("is counted in passthrough_provider_lists_total, not as a call to a provider", async () => {
    const text = await (await fetch(`${gateway.url}/metrics`)).text();
    const lines = (name: string) => text.split("\n").filter((line) => line.startsWith(`${name}{`));
    expect(lines("passthrough_calls_total")).toEqual([]);
    expect(lines("passthrough_provider_lists_total")).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^passthrough_provider_lists_total\{protocol="rest",code="ok"\} \d+$/),
        expect.stringMatching(/^passthrough_provider_lists_total\{protocol="grpc-web",code="unauthenticated"\} 1$/),
      ]),
    );
  });
});
