/**
 * TLS on the same port: ALPN picks HTTP/2 or HTTP/1.1, and both carry the same deadlines as
 * cleartext; a handshake that never completes is bounded too.
 */
import { readFileSync } from "node:fs";
import * as http2 from "node:http2";
import * as net from "node:net";
import { join } from "node:path";
import * as tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NO_CACHE } from "../support/no-cache.js";
import { normalCall, parseResponse, startAbuseTarget, type AbuseTarget } from "./support/abuse.js";

const fixtures = join(import.meta.dirname, "support/tls");
const cert = join(fixtures, "test-only-cert.pem");
const ca = readFileSync(cert);
const LIMITS = { firstBytesTimeoutMs: 500, headersTimeoutMs: 1000, requestTimeoutMs: 1500 };
const SLACK_MS = 1500;

let target: AbuseTarget;
let port: number;
beforeAll(async () => {
  target = await startAbuseTarget({ ...LIMITS, tls: { cert, key: join(fixtures, "test-only-key.pem") } });
  port = Number(new URL(target.gateway.url).port);
});
afterAll(() => target?.close());

/** A TLS connection with this ALPN offer: what the server sent on it, and when it closed it. */
async function tlsExchange(alpn: string[], send?: string): Promise<{ protocol: string | false; received: string; closedAfterMs?: number }> {
  const socket = tls.connect({ host: "127.0.0.1", port, ca, ALPNProtocols: alpn });
  await new Promise((resolve, reject) => socket.once("secureConnect", resolve).once("error", reject));
  const started = Date.now();
  const chunks: Buffer[] = [];
  socket.on("data", (chunk: Buffer) => chunks.push(chunk));
  socket.on("error", () => {});
  if (send !== undefined) socket.write(send);
  const closedAfterMs = await new Promise<number | undefined>((resolve) => {
    const limit = setTimeout(() => resolve(undefined), 5000);
    socket.once("close", () => {
      clearTimeout(limit);
      resolve(Date.now() - started);
    });
  });
  socket.destroy();
  return { protocol: socket.alpnProtocol ?? false, received: Buffer.concat(chunks).toString("latin1"), closedAfterMs };
}

describe("TLS on the one port", () => {
  it("serves HTTP/1.1 when ALPN offers it, never cached", async () => {
    const exchange = await tlsExchange(["http/1.1"], "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    expect(exchange.protocol).toBe("http/1.1");
    const response = parseResponse(exchange.received);
    expect(response.status).toBe(200);
    expect(response.headers).toMatchObject(NO_CACHE);
    expect(await normalCall(target.gateway.url)).toBe(200);
  });

  it("serves HTTP/2 when ALPN offers h2", async () => {
    const session = http2.connect(`https://127.0.0.1:${port}`, { ca });
    try {
      const stream = session.request({ ":path": "/healthz" });
      const headers = await new Promise<http2.IncomingHttpHeaders>((resolve) => stream.once("response", resolve));
      stream.resume();
      expect(headers[":status"]).toBe(200);
      expect(session.alpnProtocol).toBe("h2");
    } finally {
      session.close();
    }
  });

  it("closes a handshake that never completes within firstBytesTimeoutMs", async () => {
    const socket = net.connect(port, "127.0.0.1");
    await new Promise((resolve) => socket.once("connect", resolve));
    const started = Date.now();
    socket.write(Buffer.from([0x16, 0x03, 0x01])); // the start of a ClientHello, and no more
    const closedAfter = await new Promise<number>((resolve) => socket.once("close", () => resolve(Date.now() - started)));
    expect(closedAfter).toBeGreaterThanOrEqual(LIMITS.firstBytesTimeoutMs * 0.9);
    expect(closedAfter).toBeLessThan(LIMITS.firstBytesTimeoutMs + SLACK_MS);
  });

  it("answers 408 when the HTTP/1.1 request never comes after the handshake", async () => {
    const exchange = await tlsExchange(["http/1.1"], "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    expect(exchange.protocol).toBe("http/1.1");
    const response = parseResponse(exchange.received);
    expect(response.status).toBe(408);
    expect(response.headers).toMatchObject({ ...NO_CACHE, connection: "close" });
    expect(exchange.closedAfterMs).toBeLessThan(LIMITS.headersTimeoutMs + SLACK_MS);
  });

  it("sends GOAWAY to an HTTP/2 connection that never opens a stream", async () => {
    const session = http2.connect(`https://127.0.0.1:${port}`, { ca });
    session.on("error", () => {});
    const started = Date.now();
    const goaway = await new Promise<number>((resolve) => session.once("goaway", (code) => resolve(code)));
    const closedAfter = await new Promise<number>((resolve) => session.once("close", () => resolve(Date.now() - started)));
    expect(goaway).toBe(http2.constants.NGHTTP2_NO_ERROR);
    expect(closedAfter).toBeGreaterThanOrEqual(LIMITS.headersTimeoutMs * 0.9);
    expect(closedAfter).toBeLessThan(LIMITS.headersTimeoutMs + SLACK_MS);
  });
});
