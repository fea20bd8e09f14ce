import { request as httpRequest } from "node:http";
import { connect } from "node:net";
import { join } from "node:path";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { openStore } from "../../src/store/open.js";
import { until } from "../journal/support.js";
import { callStream, createProtocolClient, PROTOCOLS } from "../support/clients.js";
import { chunks, sse, startFakeProvider, type FakeProvider } from "../support/fake-provider.js";
import { startTestGateway } from "../support/gateway.js";
import { spawnGateway } from "./support/child-gateway.js";
import { startWebhookReceiver, webhookSink, type WebhookReceiver } from "./support/webhook-receiver.js";

// SIGTERM and SIGINT: what was in flight finishes, nothing new gets in, and the journal and
// the sinks hold every call that was answered; SIGKILL: the next start makes that true again.
// The gateway is the built CLI in a child process.
let provider: FakeProvider;
let webhook: WebhookReceiver;

beforeAll(async () => {
  provider = await startFakeProvider();
  webhook = await startWebhookReceiver();
});
afterAll(async () => {
  await provider?.close();
  await webhook?.close();
});
afterEach(() => {
  provider.clear();
  webhook.batches.length = 0;
});

/** A POST on a connection of its own (no pool that might still hold one): resolves with the status, or the error code. */
function freshPost(url: string, path: string, headers: Record<string, string>): Promise<number | string> {
  return new Promise((resolve) => {
    const req = httpRequest(`${url}${path}`, { method: "POST", agent: false, headers: { ...headers, "content-type": "application/json" } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    req.end('{"model":"m"}');
  });
}

const PATH = "/api/v1/prompts/passthrough/local/";
const LIFECYCLE = ["chat_started", "chat_completion_request", "chat_completion_response", "chat_finished"];

describe.each(["SIGTERM", "SIGINT"] as const)("%s", (signal) => {
  it("lets the streams in flight finish, refuses new calls, journals and delivers every answered call's signals, and exits 0", async () => {
    const gateway = await spawnGateway({
      providers: [{ name: "local", baseUrl: provider.url, retries: 0 }],
      server: { shutdownTimeoutMs: 15_000 },
      signals: { sinks: [webhookSink(webhook)] },
    });
    const { headers } = gateway;
    let exit: Promise<number | null> | undefined;
    try {
      // One call answered before the signal.
      const before = await createProtocolClient("rest", gateway.url, headers).unary("local", { model: "m" });
      expect(before.ok).toBe(true);

      // Two streams in flight when it arrives: gRPC over HTTP/2 and REST SSE over HTTP/1.1, a chunk every 150 ms.
      provider.reply(sse(chunks(10), { intervalMs: 150 }), sse(chunks(10), { intervalMs: 150 }));
      let grpcKey: string | undefined;
      let grpcStarted!: () => void;
      const grpcFirstChunk = new Promise<void>((resolve) => (grpcStarted = resolve));
      const grpcStream = callStream("grpc", gateway.url, "local", { model: "m" }, { headers, onHeaders: (h) => (grpcKey ??= h["x-journal-key"]), onChunk: () => grpcStarted() });
      const rest = await fetch(`${gateway.url}${PATH}`, { method: "POST", headers, body: JSON.stringify({ model: "m", stream: true }) });
      expect(rest.headers.get("content-type")).toMatch(/^text\/event-stream/);
      const restKey = rest.headers.get("x-journal-key")!;
      const reader = rest.body!.getReader();
      const restText = (async () => {
        let text = "";
        for (let part = await reader.read(); !part.done; part = await reader.read()) text += Buffer.from(part.value).toString("utf8");
        return text;
      })();
      await grpcFirstChunk;

      exit = gateway.stop(30_000, signal);
      await until(() => gateway.stdout.some((line) => line.includes('"msg":"shutting down"')), "the gateway logs that it is shutting down", 5000);
      // A second signal does not cut the shutdown short.
      void gateway.stop(30_000, signal === "SIGTERM" ? "SIGINT" : "SIGTERM");
      await until(() => gateway.stdout.some((line) => line.includes('"msg":"already shutting down"')), "the second signal is logged", 5000);
      // A new call is refused: the gateway no longer accepts connections.
      expect(await freshPost(gateway.url, PATH, headers)).toBe("ECONNREFUSED");
      const late = createProtocolClient("grpc", gateway.url, headers);
      expect((await late.unary("local", { model: "m" })).code).toBe("unavailable");
      late.close();

      // Both streams finish, every chunk and the end.
      const streamed = await grpcStream;
      expect(streamed.code).toBeUndefined();
      expect(streamed.chunks).toHaveLength(11);
      const text = await restText;
      expect(text.match(/^data: \{/gm)).toHaveLength(11);
      expect(text.trimEnd().endsWith("data: [DONE]")).toBe(true);

      expect(await exit).toBe(0);
      expect(gateway.stdout.some((line) => line.includes('"msg":"passthrough stopped"'))).toBe(true);

      // The journal holds the three answered calls, and only them: the refused ones never became calls.
      const store = await openStore(`sqlite:${join(gateway.dir, "passthrough.db")}`);
      const { entries } = await store.listJournal({ pageSize: 100 });
      await store.close();
      const answered = [before.headers["x-journal-key"], grpcKey!, restKey];
      expect(entries.map((entry) => entry.key).sort()).toEqual([...answered].sort());
      for (const entry of entries) expect(entry).toMatchObject({ status: 200, grpcCode: 0, upstreamStatus: 200 });
      const streamedEntry = entries.find((entry) => entry.key === grpcKey)!;
      expect(JSON.parse(streamedEntry.responseBody!)).toMatchObject({ object: "chat.completion", chunks: 11 });

      // Every signal of those calls reached the webhook before the process exited, in order.
      const events = webhook.batches.flat();
      for (const key of answered) {
        const mine = events.filter((event) => event.journal_key === key);
        expect([...new Map(mine.map((event) => [event.id, event.signal])).values()]).toEqual(LIFECYCLE);
      }
      expect(new Set(events.map((event) => event.journal_key))).toEqual(new Set(answered));
    } finally {
      if (exit === undefined) await gateway.stop();
      else await exit;
    }
  });
});

describe("a request on a kept-alive HTTP/1.1 connection while the gateway drains", () => {
  it("is answered 503 UNAVAILABLE without a journal key, after the stream before it finished, and the connection closes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "passthrough-drain-"));
    const url = `sqlite:${join(dir, "passthrough.db")}`;
    const gateway = await startTestGateway({ database: { url }, providers: [{ name: "local", baseUrl: provider.url, retries: 0 }], server: { shutdownTimeoutMs: 10_000 } });
    provider.reply(sse(chunks(6), { intervalMs: 100 }));
    const { port } = new URL(gateway.url);
    const socket = connect(Number(port), "127.0.0.1");
    let received = "";
    socket.on("data", (chunk: Buffer) => (received += chunk.toString("utf8")));
    const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
    const post = (body: string) =>
      `POST ${PATH} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    socket.write(post('{"model":"m","stream":true}'));
    await until(() => received.includes("data: {"), "the stream has begun");

    const closing = gateway.close();
    socket.write(post('{"model":"m"}'));
    await closed;
    await closing;

    const [stream, refusal] = received.split(/(?=HTTP\/1\.1 )/);
    expect(stream).toMatch(/^HTTP\/1\.1 200 /);
    expect(stream).toContain("data: [DONE]");
    const journalKey = /x-journal-key: ([0-9a-f]{64})/i.exec(stream)![1];
    expect(refusal).toMatch(/^HTTP\/1\.1 503 /);
    expect(refusal).toMatch(/\r\nconnection: close\r\n/i);
    expect(refusal).not.toMatch(/x-journal-key/i);
    const envelope = JSON.parse(refusal.slice(refusal.indexOf("\r\n\r\n") + 4)) as { error: { code: string; description: string }; metadata: object };
    expect(envelope).toMatchObject({ error: { code: "unavailable", status: 503 }, metadata: {} });
    expect(envelope.error.description).toContain("shutting down");

    const store = await openStore(url);
    const { entries } = await store.listJournal({ pageSize: 10 });
    await store.close();
    expect(entries.map((entry) => entry.key)).toEqual([journalKey]);
  });
});

describe("a call still in flight when the shutdown deadline passes", () => {
  it.each(["rest", "grpc"] as const)("over %s is cut off UNAVAILABLE, its caller told so, and it is journaled as it ended", async (protocol) => {
    const dir = mkdtempSync(join(tmpdir(), "passthrough-drain-"));
    const url = `sqlite:${join(dir, "passthrough.db")}`;
    const gateway = await startTestGateway({ database: { url }, providers: [{ name: "local", baseUrl: provider.url, retries: 0 }], server: { shutdownTimeoutMs: 300 } });
    provider.reply(sse(chunks(100), { intervalMs: 100 }));
    let journalKey: string | undefined;
    let started!: () => void;
    const firstChunk = new Promise<void>((resolve) => (started = resolve));
    let outcome: Promise<{ chunks: number; ending: string }>;
    if (protocol === "grpc") {
      outcome = callStream("grpc", gateway.url, "local", { model: "m" }, { onHeaders: (h) => (journalKey ??= h["x-journal-key"]), onChunk: () => started() }).then((result) => ({
        chunks: result.chunks.length,
        ending: result.code ?? "ok",
      }));
    } else {
      const response = await fetch(`${gateway.url}${PATH}`, { method: "POST", body: JSON.stringify({ model: "m", stream: true }) });
      journalKey = response.headers.get("x-journal-key") ?? undefined;
      outcome = (async () => {
        let text = "";
        try {
          for await (const part of response.body!) {
            text += Buffer.from(part).toString("utf8");
            started();
          }
        } catch {
          return { chunks: (text.match(/^data: \{/gm) ?? []).length, ending: "reset" };
        }
        return { chunks: (text.match(/^data: \{/gm) ?? []).length, ending: /event: error\ndata: (.*)/.exec(text)?.[1] ?? "ended" };
      })();
    }
    await firstChunk;
    const startedAt = Date.now();
    await gateway.close();
    expect(Date.now() - startedAt).toBeLessThan(3000);
    const ended = await outcome;
    expect(ended.chunks).toBeGreaterThan(0);
    expect(ended.chunks).toBeLessThan(100);
    // gRPC: the status in the trailers; REST: the stream's last event is the error envelope.
    if (protocol === "grpc") expect(ended.ending).toBe("unavailable");
    else expect(JSON.parse(ended.ending)).toMatchObject({ error: { code: "unavailable", description: expect.stringContaining("shutdown deadline") }, metadata: { key: journalKey } });

    const store = await openStore(url);
    const entry = await store.getJournalEntry(journalKey!);
    await store.close();
    expect(entry).toMatchObject({ grpcCode: 14, error: expect.stringContaining("the shutdown deadline") });
  });
});

// A process that dies (SIGKILL) right after it answered: what the caller got is journaled and
// signalled at the next start, from the write-ahead logs, each entry once and each event once by id.
describe("a gateway killed with SIGKILL just after it answered", () => {
  it("journals and signals every answered call at its next start: none lost, none twice", async () => {
    const config = {
      providers: [{ name: "local", baseUrl: provider.url, retries: 0 }],
      // The same name at the restart: its write-ahead logs are found by it.
      server: { instanceId: "crash-test" },
      signals: { sinks: [webhookSink(webhook)] },
    };
    webhook.down = true;
    const received = () => webhook.batches.flat();
    const first = await spawnGateway(config);
    let second: Awaited<ReturnType<typeof spawnGateway>> | undefined;
    try {
      const { headers } = first;
      const keys: string[] = [];
      const unary = await Promise.all(
        PROTOCOLS.map(async (protocol) => {
          const client = createProtocolClient(protocol, first.url, headers);
          try {
            return await client.unary("local", { model: "m" });
          } finally {
            client.close();
          }
        }),
      );
      for (const result of unary) {
        expect(result.ok, JSON.stringify(result)).toBe(true);
        keys.push(result.headers["x-journal-key"]);
      }
      provider.reply(sse(chunks(3)), sse(chunks(3)));
      let streamKey: string | undefined;
      const streamed = await callStream("grpc", first.url, "local", { model: "m", stream: true }, { headers, onHeaders: (h) => (streamKey ??= h["x-journal-key"]) });
      expect(streamed.code).toBeUndefined();
      const rest = await fetch(`${first.url}/api/v1/prompts/passthrough/local/`, { method: "POST", headers, body: JSON.stringify({ model: "m", stream: true }) });
      const text = await rest.text();
      expect(text.trimEnd().endsWith("data: [DONE]")).toBe(true);
      keys.push(streamKey!, rest.headers.get("x-journal-key")!);

      // Killed at once: the entries may still have been in memory, the events certainly were (the webhook refused them).
      expect(await first.stop(0, "SIGKILL")).toBeNull();
      expect(received()).toEqual([]);

      webhook.down = false;
      second = await spawnGateway(config, {}, undefined, first.dir);
      const store = await openStore(`sqlite:${join(first.dir, "passthrough.db")}`);
      try {
        const journaled = async () => (await Promise.all(keys.map((key) => store.getJournalEntry(key)))).every((entry) => entry !== undefined);
        const signalled = () => keys.every((key) => new Set(received().filter((event) => event.journal_key === key).map((event) => event.id)).size === LIFECYCLE.length);
        await until(async () => (await journaled()) && signalled(), "the restarted gateway journals and signals what the first answered", 20_000);
        const { entries } = await store.listJournal({ pageSize: 100 });
        expect(entries.map((entry) => entry.key).sort()).toEqual([...keys].sort());
        for (const entry of entries) expect(entry).toMatchObject({ status: 200, grpcCode: 0, upstreamStatus: 200 });
      } finally {
        await store.close();
      }
      for (const key of keys) {
        const mine = received().filter((event) => event.journal_key === key);
        // Delivery is at least once: by id, each signal once, in order.
        expect([...new Map(mine.map((event) => [event.id, event.signal])).values()]).toEqual(LIFECYCLE);
      }
      expect(await second.stop()).toBe(0);
    } finally {
      await first.stop(0, "SIGKILL");
      await second?.stop(0, "SIGKILL");
    }
  });
});
