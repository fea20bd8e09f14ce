/**
 * Connection-level abuse of the one-port listener over raw sockets: each row is what a peer
 * sends, the answer it must get (or the silent close), and how soon the connection must end.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NO_CACHE } from "../support/no-cache.js";
import { AUTHORIZATION, normalCall, rawExchange, startAbuseTarget, type AbuseTarget, type RawOptions } from "./support/abuse.js";

// Short deadlines, so that the rows can wait for them; the defaults are checked in defaults.test.ts.
const LIMITS = { firstBytesTimeoutMs: 500, headersTimeoutMs: 1000, requestTimeoutMs: 1200, keepAliveTimeoutMs: 1000 };
/** How late a close may come after its deadline on a busy machine (Node checks request deadlines every 100 ms here). */
const SLACK_MS = 1500;

let target: AbuseTarget;
beforeAll(async () => {
  target = await startAbuseTarget(LIMITS);
});
afterAll(() => target?.close());

const chatRequest = (headers: string) => `POST /api/v1/prompts/passthrough/local/ HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n${AUTHORIZATION}\r\n${headers}\r\n`;
const manyHeaders = Array.from({ length: 1024 }, (_, i) => `x-filler-${String(i).padStart(4, "0")}: ${"v".repeat(44)}\r\n`).join("");

interface Row {
  name: string;
  steps: (string | Buffer)[];
  options?: RawOptions;
  /** The status answered; undefined: the connection is closed without an answer. */
  status?: number;
  /** The deadline the close must follow (not come before, nor long after); undefined: at once. */
  deadlineMs?: number;
}

const rows: Row[] = [
  { name: "silence", steps: [], deadlineMs: LIMITS.firstBytesTimeoutMs },
  { name: "a partial HTTP/2 preface", steps: ["PRI * HTTP/2.0\r\n"], deadlineMs: LIMITS.firstBytesTimeoutMs },
  { name: "the HTTP/2 preface one byte at a time", steps: [..."PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"], options: { everyMs: 100 }, deadlineMs: LIMITS.firstBytesTimeoutMs },
  {
    name: "slowloris headers",
    steps: ["GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n", ...Array.from({ length: 100 }, (_, i) => `x-slow-${i}: 1\r\n`)],
    options: { everyMs: 100 },
    status: 408,
    deadlineMs: LIMITS.headersTimeoutMs,
  },
  { name: "a body that dribbles forever", steps: [chatRequest("content-length: 1000000\r\n"), "a"], options: { everyMs: 50, repeatLast: true }, status: 408, deadlineMs: LIMITS.requestTimeoutMs },
  { name: "Content-Length with Transfer-Encoding (smuggling)", steps: [chatRequest("content-length: 4\r\ntransfer-encoding: chunked\r\n") + "0\r\n\r\n"], status: 400 },
  { name: "a bad chunk size", steps: [chatRequest("transfer-encoding: chunked\r\n") + "zz\r\n{}\r\n0\r\n\r\n"], status: 400 },
  { name: "64 KiB of headers", steps: [`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n${manyHeaders}\r\n`], status: 431 },
  { name: "an HTTP/1.1 request without Host", steps: ["GET /healthz HTTP/1.1\r\n\r\n"], status: 400 },
];

describe("an HTTP/1.1 peer that abuses the connection", () => {
  // The rows wait for deadlines, so they run at once; none depends on another.
  it.concurrent.for(rows)("$name: answered as documented, closed in time, and the gateway serves on", async ({ steps, options, status, deadlineMs }, { expect }) => {
    const exchange = await rawExchange(target.gateway.url, steps, { limitMs: (deadlineMs ?? 0) + SLACK_MS + 2500, ...options });

    expect(exchange.status).toBe(status);
    if (status !== undefined) {
      expect(exchange.headers).toMatchObject({ ...NO_CACHE, connection: "close" });
    } else {
      expect(exchange.received).toBe("");
    }
    expect(exchange.closedAfterMs).toBeDefined();
    if (deadlineMs !== undefined) {
      expect(exchange.closedAfterMs).toBeGreaterThanOrEqual(deadlineMs * 0.9);
      expect(exchange.closedAfterMs).toBeLessThan(deadlineMs + SLACK_MS);
    } else {
      expect(exchange.closedAfterMs).toBeLessThan(SLACK_MS);
    }
    expect(await normalCall(target.gateway.url)).toBe(200);
  });

  it("answers the parser's refusals with the JSON error envelope", async () => {
    const exchange = await rawExchange(target.gateway.url, rows.find((row) => row.status === 431)!.steps);
    expect(exchange.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(exchange.body)).toEqual({
      error: { errorClass: "ResourceExhausted", description: "the request headers are larger than 16384 bytes", status: 431, code: "resource_exhausted" },
      api: "smarter.sh/v1",
      // No call began, so no journal key: the envelope of every request that is no call.
      metadata: {},
    });
  });

  it("closes an idle keep-alive connection after keepAliveTimeoutMs (and the second Node adds)", async () => {
    const exchange = await rawExchange(target.gateway.url, ["GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"], { limitMs: 5000 });
    expect(exchange.status).toBe(200);
    expect(exchange.headers["keep-alive"]).toBe("timeout=1");
    expect(exchange.closedAfterMs).toBeGreaterThanOrEqual(LIMITS.keepAliveTimeoutMs);
    expect(exchange.closedAfterMs).toBeLessThan(LIMITS.keepAliveTimeoutMs + 1000 + SLACK_MS);
  });

  it("bounds the headers of the second request on a keep-alive connection too", async () => {
    const second = ["GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n", ...Array.from({ length: 100 }, (_, i) => `x-slow-${i}: 1\r\n`)];
    const exchange = await rawExchange(target.gateway.url, ["GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", ...second], { everyMs: 100, limitMs: 6000 });
    expect(exchange.received).toContain("HTTP/1.1 200 OK");
    expect(exchange.received).toContain("HTTP/1.1 408 Request Timeout");
    expect(exchange.closedAfterMs).toBeLessThan(100 + LIMITS.headersTimeoutMs + SLACK_MS);
  });
});
