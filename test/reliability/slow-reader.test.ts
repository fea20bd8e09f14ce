/**
 * A caller that never reads a large streamed answer: the gateway must stop reading the provider
 * (backpressure all the way up) rather than hold the stream in memory.
 */
import * as http2 from "node:http2";
import * as net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sse, type RecordedRequest } from "../support/fake-provider.js";
import { ABUSE_KEY, AUTHORIZATION, normalCall, sleep, startAbuseTarget, type AbuseTarget } from "./support/abuse.js";

const EVENTS = 20_000;
const EVENT_BYTES = 4096;
/** The stream is five times this: buffering it would show. */
const MEMORY_BOUND_BYTES = 32 * 1024 * 1024;
const REST_PATH = "/api/v1/prompts/passthrough/local/";
const body = JSON.stringify({ model: "m", stream: true, messages: [] });

let target: AbuseTarget;
beforeAll(async () => {
  target = await startAbuseTarget({});
});
afterAll(() => target?.close());

/** Opens the stream and never reads it; returns a function that hangs up. */
type Reader = (url: string) => Promise<() => void>;

const readers: { name: string; open: Reader }[] = [
  {
    name: "HTTP/1.1, a socket that stops reading",
    async open(url) {
      const { hostname, port } = new URL(url);
      const socket = net.connect(Number(port), hostname);
      await new Promise((resolve) => socket.once("connect", resolve));
      socket.on("error", () => {});
      socket.write(`POST ${REST_PATH} HTTP/1.1\r\nHost: ${hostname}\r\ncontent-type: application/json\r\n${AUTHORIZATION}\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
      socket.pause();
      return () => socket.destroy();
    },
  },
  {
    name: "HTTP/2, a stream that is never read",
    async open(url) {
      const session = http2.connect(url);
      session.on("error", () => {});
      const stream = session.request({ ":method": "POST", ":path": REST_PATH, "content-type": "application/json", authorization: `Bearer ${ABUSE_KEY.key.reveal()}` });
      stream.on("error", () => {});
      stream.end(body);
      stream.pause();
      return () => session.destroy();
    },
  },
];

/** Resolves once the provider has not been able to send an event for `quietMs` (or after `limitMs`). */
async function providerStalled(request: RecordedRequest, quietMs: number, limitMs: number): Promise<void> {
  const started = Date.now();
  let sent = -1;
  while (Date.now() - started < limitMs && sent !== request.sentAt.length) {
    sent = request.sentAt.length;
    await sleep(quietMs);
  }
}

describe("a caller that never reads a large streamed answer", () => {
  it.each(readers)("$name: the gateway's memory stays bounded and it serves on", async ({ open }) => {
    const event = { object: "chat.completion.chunk", choices: [{ index: 0, delta: { content: "x".repeat(EVENT_BYTES) } }] };
    target.provider.clear();
    target.provider.reply(sse(Array.from({ length: EVENTS }, () => event)));
    const rssBefore = target.gateway.rssBytes();
    target.gateway.resetPeak();

    const hangUp = await open(target.gateway.url);
    const [request] = await target.provider.waitForRequests(1);
    await providerStalled(request, 250, 8000);

    expect(request.sentAt.length).toBeLessThan(EVENTS / 5);
    expect(target.gateway.peakRssBytes() - rssBefore).toBeLessThan(MEMORY_BOUND_BYTES);
    hangUp();
    // Hanging up releases the provider's connection.
    await request.closed;
    expect(await normalCall(target.gateway.url)).toBe(200);
  });
});
