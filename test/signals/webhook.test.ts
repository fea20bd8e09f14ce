import { createHmac, randomBytes } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from "node:http";
import { Webhook } from "standardwebhooks";
import { afterEach, describe, expect, it } from "vitest";
import type { SignalEvent } from "../../src/signals/sink.js";
import { createWebhookSink, signingKeys, webhookId } from "../../src/signals/sinks/webhook.js";
import { runSinkContract, sampleEvents, silentContext } from "./sink.contract.js";
import { closedPort, errorText, timed } from "./support/services.js";

interface Received {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  readonly remotePort: number;
}

interface Receiver {
  readonly url: string;
  readonly received: Received[];
  /** How the next requests are answered; default 204 at once. */
  answer: (response: ServerResponse, request: Received) => void;
  /** Runs `fn` after `ms`, unless the receiver is closed first. */
  later(ms: number, fn: () => void): void;
  close(): Promise<void>;
}

/** A real HTTP server that records every request and answers as told. */
async function startReceiver(): Promise<Receiver> {
  const timers = new Set<NodeJS.Timeout>();
  const received: Received[] = [];
  let answer: Receiver["answer"] = (response) => response.writeHead(204).end();
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const one = { method: request.method ?? "", url: request.url ?? "", headers: request.headers, body: Buffer.concat(chunks), remotePort: request.socket.remotePort ?? 0 };
      received.push(one);
      answer(response, one);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/hooks/signals?tenant=a`,
    received,
    get answer() {
      return answer;
    },
    set answer(next) {
      answer = next;
    },
    later: (ms, fn) => void timers.add(setTimeout(fn, ms)),
    async close() {
      for (const timer of timers) clearTimeout(timer);
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

const whsec = () => `whsec_${randomBytes(24).toString("base64")}`;
const events = (received: Received[]) => received.flatMap((request) => JSON.parse(request.body.toString("utf8")) as SignalEvent[]);
const never = () => new AbortController().signal;

runSinkContract({
  name: "webhook",
  newSink: async () => {
    const receiver = await startReceiver();
    return {
      sink: createWebhookSink({ url: receiver.url, secret: whsec(), timeoutMs: 2000 }, silentContext),
      readBack: async () => events(receiver.received),
      cleanup: () => receiver.close(),
    };
  },
});

describe("the webhook sink", () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  async function setup(secret = whsec(), timeoutMs = 2000) {
    const receiver = await startReceiver();
    const sink = createWebhookSink({ url: receiver.url, secret, timeoutMs }, silentContext);
    cleanups.push(() => receiver.close(), () => sink.close());
    return { receiver, sink, secret };
  }

  it("POSTs the batch as a JSON array to the URL's path and query, with content-type application/json", async () => {
    const { receiver, sink } = await setup();
    const batch = sampleEvents(3);
    await sink.deliver(batch, never());
    expect(receiver.received).toHaveLength(1);
    const [request] = receiver.received;
    expect(request.method).toBe("POST");
    expect(request.url).toBe("/hooks/signals?tenant=a");
    expect(request.headers["content-type"]).toBe("application/json");
    expect(request.body.equals(Buffer.from(JSON.stringify(batch), "utf8"))).toBe(true);
  });

  it("signs with Standard Webhooks headers that the standardwebhooks library verifies, and with x-passthrough-signature", async () => {
    const { receiver, sink, secret } = await setup();
    const batch = sampleEvents(2);
    await sink.deliver(batch, never());
    const [{ headers, body }] = receiver.received;
    const verified = new Webhook(secret).verify(body.toString("utf8"), headers as Record<string, string>);
    expect(verified).toEqual(batch);
    expect(headers["x-passthrough-signature"]).toBe(`sha256=${createHmac("sha256", secret).update(body).digest("hex")}`);
    expect(Math.abs(Number(headers["webhook-timestamp"]) - Date.now() / 1000)).toBeLessThan(5);
    expect(headers["webhook-signature"]).toMatch(/^v1,[A-Za-z0-9+/]+={0,2}$/);
    // Another secret does not verify.
    expect(() => new Webhook(whsec()).verify(body.toString("utf8"), headers as Record<string, string>)).toThrow();
  });

  it("uses a secret without the whsec_ prefix as its UTF-8 bytes for both signatures", async () => {
    const secret = `plain-secret-${randomBytes(8).toString("hex")}-ü`;
    const { receiver, sink } = await setup(secret);
    await sink.deliver(sampleEvents(1), never());
    const [{ headers, body }] = receiver.received;
    const key = Buffer.from(secret, "utf8");
    expect(new Webhook(key, { format: "raw" }).verify(body.toString("utf8"), headers as Record<string, string>)).toHaveLength(1);
    expect(headers["x-passthrough-signature"]).toBe(`sha256=${createHmac("sha256", key).update(body).digest("hex")}`);
  });

  it("keeps a batch's webhook-id on a retry and gives another batch another", async () => {
    const { receiver, sink } = await setup();
    const [batch, other] = [sampleEvents(3), sampleEvents(3)];
    await sink.deliver(batch, never());
    await sink.deliver(batch, never());
    await sink.deliver(other, never());
    const ids = receiver.received.map((request) => request.headers["webhook-id"]);
    expect(ids[0]).toBe(ids[1]);
    expect(ids[2]).not.toBe(ids[0]);
    expect(ids[0]).toBe(webhookId(batch));
    expect(webhookId(batch.slice(0, 2))).not.toBe(webhookId(batch));
  });

  it("reuses its connection, reading each answer to the end", async () => {
    const { receiver, sink } = await setup();
    // An answer that arrives in two parts: a sink that did not read it to the end would lose the connection.
    receiver.answer = (response) => {
      response.writeHead(200, { "content-type": "text/plain" }).write("thanks ".repeat(2000));
      receiver.later(30, () => response.end("and goodbye"));
    };
    for (let i = 0; i < 3; i++) await sink.deliver(sampleEvents(1), never());
    expect(new Set(receiver.received.map((request) => request.remotePort)).size).toBe(1);
  });

  it.each([
    [500, /answered 500/],
    [404, /answered 404/],
    [429, /answered 429/],
    [302, /answered 302/],
  ])("rejects a %i answer, naming the status and never the secret or the body", async (status, message) => {
    const { receiver, sink, secret } = await setup();
    receiver.answer = (response) => response.writeHead(status, { location: "http://127.0.0.1:1/elsewhere" }).end(`refused: ${secret}`);
    const batch = sampleEvents(1);
    const error = await sink.deliver(batch, never()).catch((reason: unknown) => reason);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(message);
    expect(errorText(error)).not.toContain(secret);
    expect(errorText(error)).not.toContain(batch[0].id);
    // The redirect was not followed, and the sink still delivers afterwards.
    expect(receiver.received).toHaveLength(1);
    receiver.answer = (response) => response.writeHead(202).end();
    await sink.deliver(batch, never());
  });

  it("rejects within its timeout when the server answers after 10 s, without the secret", async () => {
    const { receiver, sink, secret } = await setup(whsec(), 300);
    receiver.answer = (response) => receiver.later(10_000, () => response.writeHead(204).end());
    const { ms, error } = await timed(sink.deliver(sampleEvents(2), never()));
    expect((error as Error).message).toBe("the webhook did not answer within 300 ms");
    expect(ms).toBeGreaterThanOrEqual(250);
    expect(ms).toBeLessThan(2000);
    expect(errorText(error)).not.toContain(secret);
  });

  it("takes a 2xx whose body never ends as delivered, within its timeout", async () => {
    const { receiver, sink } = await setup(whsec(), 300);
    receiver.answer = (response) => {
      response.writeHead(200, { "content-length": "100" });
      response.write("partial");
    };
    const { ms, error } = await timed(sink.deliver(sampleEvents(1), never()));
    // The 2xx arrived: the events were taken, whatever happens to the rest of the answer.
    expect(error).toBeUndefined();
    expect(ms).toBeLessThan(2000);
  });

  it("stops waiting when the signal aborts", async () => {
    const { receiver, sink, secret } = await setup(whsec(), 10_000);
    receiver.answer = (response) => receiver.later(10_000, () => response.writeHead(204).end());
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("flush deadline")), 100);
    const { ms, error } = await timed(sink.deliver(sampleEvents(1), controller.signal));
    expect((error as Error).message).toMatch(/aborted/);
    expect(ms).toBeLessThan(2000);
    expect(errorText(error)).not.toContain(secret);
  });

  it("rejects promptly when nothing listens at the URL, and is fine to build then", async () => {
    const secret = whsec();
    const sink = createWebhookSink({ url: `http://127.0.0.1:${await closedPort()}/hook`, secret, timeoutMs: 5000 }, silentContext);
    cleanups.push(() => sink.close());
    const { ms, error } = await timed(sink.deliver(sampleEvents(1), never()));
    expect((error as Error).message).toMatch(/could not be reached/);
    expect(ms).toBeLessThan(2000);
    expect(errorText(error)).not.toContain(secret);
  });

  it("sends credentials in the URL as Basic authentication", async () => {
    const receiver = await startReceiver();
    const url = new URL(receiver.url);
    url.username = "hook";
    url.password = "p@ss";
    const sink = createWebhookSink({ url: url.href, secret: whsec() }, silentContext);
    cleanups.push(() => receiver.close(), () => sink.close());
    await sink.deliver(sampleEvents(1), never());
    expect(receiver.received[0].headers.authorization).toBe(`Basic ${Buffer.from("hook:p@ss").toString("base64")}`);
  });

  it("checks its options when built, never echoing the secret", () => {
    const bad = "whsec_not*base64!";
    expect(() => signingKeys(bad)).toThrow(/base64/);
    expect(errorText(captured(() => signingKeys(bad)))).not.toContain("not*base64");
    expect(() => createWebhookSink({ url: "ftp://example.com/", secret: "s" })).toThrow(/url/);
    expect(() => createWebhookSink({ url: "http://example.com/", secret: "" })).toThrow(/secret/);
    expect(() => createWebhookSink({ url: "http://example.com/", secret: "s", timeoutMs: 0 })).toThrow(/timeoutMs/);
    const { standard } = signingKeys("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    expect(standard.toString("base64")).toBe("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
  });
});

function captured(work: () => unknown): unknown {
  try {
    work();
  } catch (error) {
    return error;
  }
  return undefined;
}
