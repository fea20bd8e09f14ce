/**
 * The connection limits at their defaults: the values README.md documents, and a gateway
 * started without settings applies them on the wire.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../../src/config/load.js";
import { connectRawHttp2, FrameType, Flag } from "./support/raw-http2.js";
import { rawExchange, startAbuseTarget, type AbuseTarget } from "./support/abuse.js";

const SETTINGS_MAX_CONCURRENT_STREAMS = 0x3;
const SETTINGS_MAX_HEADER_LIST_SIZE = 0x6;

let target: AbuseTarget;
beforeAll(async () => {
  target = await startAbuseTarget({});
});
afterAll(() => target?.close());

describe("the connection limits' defaults", () => {
  it("are the documented values", () => {
    expect(parseConfig({}).server).toMatchObject({
      firstBytesTimeoutMs: 10_000,
      headersTimeoutMs: 20_000,
      requestTimeoutMs: 120_000,
      keepAliveTimeoutMs: 65_000,
      http2IdleTimeoutMs: 300_000,
      http2MaxConcurrentStreams: 100,
      maxHeaderBytes: 16 * 1024,
      maxConnections: 4096,
    });
  });

  it("refuses a headers deadline longer than the request's, naming the field", () => {
    expect(() => parseConfig({ server: { headersTimeoutMs: 5000, requestTimeoutMs: 1000 } })).toThrow(ConfigError);
    expect(() => parseConfig({ server: { headersTimeoutMs: 5000, requestTimeoutMs: 1000 } })).toThrow(/server\.headersTimeoutMs: must not be longer than requestTimeoutMs/);
  });

  it("advertise the HTTP/1.1 keep-alive timeout", async () => {
    const exchange = await rawExchange(target.gateway.url, ["GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"], { limitMs: 300 });
    expect(exchange.status).toBe(200);
    expect(exchange.headers["keep-alive"]).toBe("timeout=65");
  });

  it("refuse HTTP/1.1 headers over 16 KiB with 431", async () => {
    const exchange = await rawExchange(target.gateway.url, [`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nx-big: ${"a".repeat(17 * 1024)}\r\n\r\n`]);
    expect(exchange.status).toBe(431);
  });

  it("advertise 100 concurrent streams and a 16 KiB header list in the HTTP/2 SETTINGS", async () => {
    const peer = await connectRawHttp2(target.gateway.url);
    const settings = peer.frames.find((f) => f.type === FrameType.SETTINGS && !(f.flags & Flag.ACK))!;
    const values = new Map<number, number>();
    for (let at = 0; at + 6 <= settings.payload.length; at += 6) values.set(settings.payload.readUInt16BE(at), settings.payload.readUInt32BE(at + 2));
    peer.destroy();
    expect(values.get(SETTINGS_MAX_CONCURRENT_STREAMS)).toBe(100);
    expect(values.get(SETTINGS_MAX_HEADER_LIST_SIZE)).toBe(16 * 1024);
  });
});
