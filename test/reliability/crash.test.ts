import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SignalEvent } from "../../src/signals/sink.js";
import { openStore } from "../../src/store/open.js";
import { until } from "../journal/support.js";
import { callStream, createProtocolClient, PROTOCOLS } from "../support/clients.js";
import { chunks, sse, startFakeProvider, type FakeProvider } from "../support/fake-provider.js";
import { spawnGateway } from "./support/child-gateway.js";

// A process that dies (SIGKILL) right after it answered: what the caller got is journaled and
// signalled at the next start, from the write-ahead logs, each entry once and each event once by id.
let provider: FakeProvider;
let webhook: Server;
let webhookUrl: string;
let webhookDown = true;
const received: SignalEvent[] = [];

beforeAll(async () => {
  provider = await startFakeProvider();
  webhook = createServer((req, res) => {
    const body: Buffer[] = [];
    req.on("data", (chunk: Buffer) => body.push(chunk));
    req.on("end", () => {
      if (webhookDown) return void res.writeHead(503).end();
      received.push(...(JSON.parse(Buffer.concat(body).toString("utf8")) as SignalEvent[]));
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => webhook.listen(0, "127.0.0.1", resolve));
  webhookUrl = `http://127.0.0.1:${(webhook.address() as AddressInfo).port}/hooks`;
});
afterAll(async () => {
  await provider?.close();
  await new Promise((resolve) => webhook?.close(resolve));
});

const LIFECYCLE = ["chat_started", "chat_completion_request", "chat_completion_response", "chat_finished"];

describe("a gateway killed with SIGKILL just after it answered", () => {
  it("journals and signals every answered call at its next start: none lost, none twice", async () => {
    const config = {
      providers: [{ name: "local", baseUrl: provider.url, retries: 0 }],
      // The same name at the restart: its write-ahead logs are found by it.
      server: { instanceId: "crash-test" },
      signals: { sinks: [{ type: "webhook" as const, url: webhookUrl, secret: "whsec_c2hvcnQgdGVzdCBzZWNyZXQ=" }] },
    };
    webhookDown = true;
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
      expect(received).toEqual([]);

      webhookDown = false;
      second = await spawnGateway(config, {}, undefined, first.dir);
      const store = await openStore(`sqlite:${join(first.dir, "passthrough.db")}`);
      try {
        const journaled = async () => (await Promise.all(keys.map((key) => store.getJournalEntry(key)))).every((entry) => entry !== undefined);
        const signalled = () => keys.every((key) => new Set(received.filter((event) => event.journal_key === key).map((event) => event.id)).size === LIFECYCLE.length);
        await until(async () => (await journaled()) && signalled(), "the restarted gateway journals and signals what the first answered", 20_000);
        const { entries } = await store.listJournal({ pageSize: 100 });
        expect(entries.map((entry) => entry.key).sort()).toEqual([...keys].sort());
        for (const entry of entries) expect(entry).toMatchObject({ status: 200, grpcCode: 0, upstreamStatus: 200 });
      } finally {
        await store.close();
      }
      for (const key of keys) {
        const mine = received.filter((event) => event.journal_key === key);
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
