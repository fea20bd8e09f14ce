import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { newApiKey } from "../../src/auth/api-keys.js";
import { AdminService } from "../../src/gen/smarter/prompt/v1/admin_pb.js";
import type { SignalEvent } from "../../src/signals/sink.js";
import { openStore } from "../../src/store/open.js";
import type { Store } from "../../src/store/store.js";
import { codeName, createProtocolClient, PROTOCOLS } from "../support/clients.js";
import { startFakeProvider, type FakeProvider } from "../support/fake-provider.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";
import { memorySink } from "../support/memory-sink.js";

// The logPrompt switch flipped through AdminService.SetLogging, on every protocol, by an admin
// key only; the admin calls themselves are neither journaled nor signalled.
let provider: FakeProvider;
let gateway: TestGateway;
let store: Store;
const keys: Record<"admin" | "plain", Record<string, string>> = { admin: {}, plain: {} };
const events: SignalEvent[] = [];
const sink = memorySink(events);

beforeAll(async () => {
  provider = await startFakeProvider();
  const url = `sqlite:${join(mkdtempSync(join(tmpdir(), "passthrough-admin-")), "passthrough.db")}`;
  store = await openStore(url);
  for (const [name, admin] of [["admin", true], ["plain", false]] as const) {
    const material = newApiKey();
    await store.createKey({ id: material.id, digest: material.digest, name, admin });
    keys[name] = { authorization: `Bearer ${material.key.reveal()}` };
  }
  gateway = await startTestGateway({ database: { url }, providers: [{ name: "local", baseUrl: provider.url, retries: 0 }] }, {}, undefined, {
    authenticate: true,
    signalSinks: [sink],
  });
});
afterAll(async () => {
  await gateway?.close();
  await store?.close();
  await provider?.close();
});
afterEach(async () => {
  await setLogging("rest", keys.admin, { logPrompt: false });
});

type Settings = { logPrompt?: boolean; level?: string };
interface Answer {
  /** The settings in force, when it succeeded. */
  settings?: Settings;
  /** REST status, or the gRPC code name, when it failed. */
  refused?: number | string;
  journalKey?: string;
}

/** AdminService.SetLogging over one protocol: REST through its binding, the others with connect-node's clients. */
async function setLogging(protocol: (typeof PROTOCOLS)[number], headers: Record<string, string>, request: Settings, baseUrl = gateway.url): Promise<Answer> {
  if (protocol === "rest") {
    const response = await fetch(`${baseUrl}/api/v1/admin/logging`, { method: "POST", headers: { ...headers, "content-type": "application/json" }, body: JSON.stringify(request) });
    const body = (await response.json()) as Settings;
    const journalKey = response.headers.get("x-journal-key") ?? undefined;
    return response.ok ? { settings: body, journalKey } : { refused: response.status, journalKey };
  }
  const transport =
    protocol === "grpc"
      ? createGrpcTransport({ baseUrl })
      : protocol === "grpc-web"
        ? createGrpcWebTransport({ baseUrl, httpVersion: "1.1" })
        : createConnectTransport({ baseUrl, httpVersion: "1.1" });
  let journalKey: string | undefined;
  try {
    const answer = await createClient(AdminService, transport).setLogging(request, { headers, onHeader: (h) => (journalKey = h.get("x-journal-key") ?? undefined) });
    return { settings: { logPrompt: answer.logPrompt, level: answer.level }, journalKey };
  } catch (error) {
    return { refused: codeName(ConnectError.from(error).code), journalKey };
  }
}

/** The prompt lines logged for calls whose body holds `word`. */
const promptLogs = (word: string) => gateway.logs.filter((line) => line.includes('"msg":"prompt"') && line.includes(word));

describe.each(PROTOCOLS)("AdminService.SetLogging over %s", (protocol) => {
  it("lets an admin key flip logPrompt on, and then a call's prompt is logged; off again, it is not", async () => {
    const word = `word-${protocol}-${Date.now()}`;
    const ask = async (suffix: string) => {
      const client = createProtocolClient(protocol, gateway.url, keys.plain);
      expect((await client.unary("local", { model: "m", messages: [{ role: "user", content: `${word}-${suffix}` }] })).ok).toBe(true);
      client.close();
    };
    await ask("before");
    expect(promptLogs(word)).toEqual([]);

    const on = await setLogging(protocol, keys.admin, { logPrompt: true });
    expect(on.settings).toEqual({ logPrompt: true, level: "info" });
    expect(gateway.logs.some((line) => line.includes('"msg":"logging reconfigured"') && line.includes('"logPrompt":true') && line.includes('"by":'))).toBe(true);
    await ask("during");
    await expect.poll(() => promptLogs(word).length).toBe(1);
    expect(promptLogs(word)[0]).toContain(`${word}-during`);

    expect((await setLogging(protocol, keys.admin, { logPrompt: false })).settings).toEqual({ logPrompt: false, level: "info" });
    await ask("after");
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(promptLogs(word)).toHaveLength(1);
  });

  it("refuses a key created without --admin (PERMISSION_DENIED, 403) and a call without a key (UNAUTHENTICATED, 401), and changes nothing", async () => {
    expect((await setLogging(protocol, keys.plain, { logPrompt: true })).refused).toBe(protocol === "rest" ? 403 : "permission_denied");
    expect((await setLogging(protocol, {}, { logPrompt: true })).refused).toBe(protocol === "rest" ? 401 : "unauthenticated");
    const word = `refused-${protocol}-${Date.now()}`;
    const client = createProtocolClient(protocol, gateway.url, keys.plain);
    expect((await client.unary("local", { model: "m", messages: [{ role: "user", content: word }] })).ok).toBe(true);
    client.close();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(promptLogs(word)).toEqual([]);
  });
});

describe("AdminService", () => {
  it("reads the settings back (GET /api/v1/admin/logging), changes the level alone, and refuses an unknown level", async () => {
    const get = await fetch(`${gateway.url}/api/v1/admin/logging`, { headers: keys.admin });
    expect(await get.json()).toEqual({ logPrompt: false, level: "info" });
    expect((await setLogging("connect", keys.admin, { level: "debug" })).settings).toEqual({ logPrompt: false, level: "debug" });
    expect((await setLogging("rest", keys.admin, { level: "loud" })).refused).toBe(400);
    expect((await setLogging("grpc", keys.admin, { level: "info" })).settings).toEqual({ logPrompt: false, level: "info" });
  });

  it("lets no one in on a gateway that does not authenticate", async () => {
    const open = await startTestGateway({ providers: [{ name: "local", baseUrl: provider.url }] });
    try {
      expect((await setLogging("rest", {}, { logPrompt: true }, open.url)).refused).toBe(403);
      expect((await setLogging("grpc", {}, { logPrompt: true }, open.url)).refused).toBe("permission_denied");
    } finally {
      await open.close();
    }
  });

  it("is neither journaled nor signalled", async () => {
    const answer = await setLogging("rest", keys.admin, { logPrompt: false });
    const refused = await setLogging("grpc-web", keys.plain, { logPrompt: true });
    const client = createProtocolClient("rest", gateway.url, keys.plain);
    const call = await client.unary("local", { model: "m" });
    const callKey = call.headers["x-journal-key"];
    await expect.poll(async () => (await store.getJournalEntry(callKey)) !== undefined, { timeout: 5000 }).toBe(true);
    await expect.poll(() => events.some((event) => event.journal_key === callKey && event.signal === "chat_finished"), { timeout: 5000 }).toBe(true);
    for (const key of [answer.journalKey, refused.journalKey]) {
      if (key === undefined) continue;
      expect(await store.getJournalEntry(key)).toBeUndefined();
      expect(events.filter((event) => event.journal_key === key)).toEqual([]);
    }
    expect(events.every((event) => event.provider === "local")).toBe(true);
  });
});
