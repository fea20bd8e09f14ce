/**
 * Answers given before the request body was read (a body over the limit): the caller must get
 * them, however its client sends, and the gateway must neither read the rest of a huge body nor
 * reset the connection under the answer.
 */
import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NO_CACHE } from "../support/no-cache.js";
import { ABUSE_KEY, AUTHORIZATION, normalCall, parseResponse, startAbuseTarget, type AbuseTarget } from "./support/abuse.js";

const MiB = 1024 * 1024;
/** 20 uploads of 9 MiB are 180 MiB: holding them, or even a few, would show. */
const MEMORY_BOUND_BYTES = 96 * MiB;
const REST_PATH = "/api/v1/prompts/passthrough/local/";
const CONNECT_PATH = "/smarter.prompt.v1.PassthroughService/Passthrough";

let target: AbuseTarget;
beforeAll(async () => {
  target = await startAbuseTarget({});
});
afterAll(() => target?.close());

interface Upload {
  status?: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  /** Whether the gateway closed the connection (within 3 s of the answer). */
  closed: boolean;
  /** Bytes the client's socket had written by then. */
  bytesWritten: number;
}

/** One upload with Node's http client: `size` bytes, declared (content-length) or chunked, written as fast as the socket takes them. */
function upload(url: string, { path, size, declared, agent }: { path: string; size: number; declared: boolean; agent: http.Agent | false }): Promise<Upload> {
  return new Promise((resolve) => {
    const result: Upload = { headers: {}, body: "", closed: false, bytesWritten: 0 };
    const req = http.request(`${url}${path}`, {
      method: "POST",
      agent,
      headers: { "content-type": "application/json", authorization: `Bearer ${ABUSE_KEY.key.reveal()}`, ...(declared ? { "content-length": size } : {}) },
    });
    let socketClosed: Promise<void> = new Promise(() => {});
    req.on("socket", (socket) => {
      socketClosed = new Promise((done) => socket.once("close", () => done()));
      const finish = () => {
        result.bytesWritten = socket.bytesWritten;
        resolve(result);
      };
      // Resolves once the connection closed after the answer, or 3 s after the answer (or the close) came.
      const settle = () =>
        Promise.race([socketClosed.then(() => (result.closed = true)), new Promise((done) => setTimeout(done, 3000))]).then(finish);
      req.once("response", (res) => {
        result.status = res.statusCode;
        result.headers = res.headers;
        res.setEncoding("utf8");
        res.on("data", (text: string) => (result.body += text));
        res.on("error", () => {});
        res.once("end", settle);
        res.once("aborted", settle);
      });
      void socketClosed.then(() => {
        if (result.status === undefined) void settle();
      });
    });
    // A write that fails once the gateway has closed (EPIPE, ECONNRESET) is expected after the answer.
    req.on("error", () => {});
    const chunk = Buffer.alloc(MiB, 0x20);
    let written = 0;
    const write = () => {
      while (written < size && !req.destroyed) {
        written += chunk.length;
        if (!req.write(chunk)) return void req.once("drain", write);
      }
      req.end();
    };
    write();
  });
}

const rows = [
  { name: "REST, declared length, no agent (the request says Connection: close)", path: REST_PATH, declared: true, keepAlive: false, status: 413 },
  { name: "REST, declared length, a keep-alive agent", path: REST_PATH, declared: true, keepAlive: true, status: 413 },
  { name: "REST, chunked, a keep-alive agent", path: REST_PATH, declared: false, keepAlive: true, status: 413 },
  { name: "Connect unary, declared length, Connection: close", path: CONNECT_PATH, declared: true, keepAlive: false, status: 429 },
];

describe("an answer given before the request body was read", () => {
  it.each(rows)("reaches the caller of 20 uploads of 9 MiB in a row over HTTP/1.1: $name", async ({ path, declared, keepAlive, status }) => {
    const agent = keepAlive ? new http.Agent({ keepAlive: true, maxSockets: 1 }) : false;
    const rssBefore = target.gateway.rssBytes();
    target.gateway.resetPeak();
    try {
      for (let i = 0; i < 20; i++) {
        const result = await upload(target.gateway.url, { path, size: 9 * MiB, declared, agent });
        expect({ upload: i, status: result.status }).toEqual({ upload: i, status });
        expect(result.headers).toMatchObject({ ...NO_CACHE, connection: "close" });
        expect(result.closed).toBe(true);
        expect(JSON.parse(result.body)).toMatchObject(path === REST_PATH ? { error: { code: "resource_exhausted" } } : { code: "resource_exhausted" });
      }
    } finally {
      if (agent) agent.destroy();
    }
    expect(target.gateway.peakRssBytes() - rssBefore).toBeLessThan(MEMORY_BOUND_BYTES);
    expect(await normalCall(target.gateway.url)).toBe(200);
  });

  it("does not read a declared 100 MiB body to its end, and closes the connection", async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const result = await upload(target.gateway.url, { path: REST_PATH, size: 100 * MiB, declared: true, agent });
    agent.destroy();
    expect(result.status).toBe(413);
    expect(result.headers.connection).toBe("close");
    expect(result.closed).toBe(true);
    expect(result.bytesWritten).toBeLessThan(24 * MiB);
    expect(await normalCall(target.gateway.url)).toBe(200);
  });

  it("bounds what it reads from a client that ignores the answer and keeps sending", async () => {
    const { hostname, port } = new URL(target.gateway.url);
    // allowHalfOpen: the gateway's FIN does not stop this client's writing.
    const socket = net.connect({ host: hostname, port: Number(port), allowHalfOpen: true });
    await new Promise((resolve) => socket.once("connect", resolve));
    socket.on("error", () => {});
    let received = "";
    socket.on("data", (chunk: Buffer) => (received += chunk.toString("latin1")));
    const started = Date.now();
    const closed = new Promise<number>((resolve) => socket.once("close", () => resolve(Date.now() - started)));
    socket.write(`POST ${REST_PATH} HTTP/1.1\r\nHost: ${hostname}\r\ncontent-type: application/json\r\n${AUTHORIZATION}\r\ncontent-length: ${100 * MiB}\r\n\r\n`);
    const chunk = Buffer.alloc(MiB, 0x20);
    let written = 0;
    const write = () => {
      while (written < 100 * MiB && !socket.destroyed) {
        written += MiB;
        if (!socket.write(chunk)) return void socket.once("drain", write);
      }
    };
    write();

    expect(await closed).toBeLessThan(2000 + 1500);
    expect(parseResponse(received).status).toBe(413);
    expect(socket.bytesWritten).toBeLessThan(40 * MiB);
    expect(await normalCall(target.gateway.url)).toBe(200);
  });

  // The rest of the body is read, up to 16 MiB more (or 2 s), then the stream is reset.
  it.each([
    { name: "9 MiB, declared length", size: 9 * MiB, declared: true, outcome: "closed", withinMs: 2000 },
    { name: "9 MiB, no declared length", size: 9 * MiB, declared: false, outcome: "closed", withinMs: 2000 },
    { name: "100 MiB, no declared length", size: 100 * MiB, declared: false, outcome: "reset", withinMs: 1500 },
  ])("over HTTP/2 ($name): the caller gets the whole 413, and its upload ends ($outcome)", async ({ size, declared, outcome, withinMs }) => {
    const session = http2.connect(target.gateway.url);
    let written = 0;
    try {
      const stream = session.request({ ":method": "POST", ":path": REST_PATH, "content-type": "application/json", authorization: `Bearer ${ABUSE_KEY.key.reveal()}`, ...(declared ? { "content-length": String(size) } : {}) });
      stream.on("error", () => {});
      const status = new Promise<unknown>((resolve) => stream.once("response", (headers) => resolve(headers[":status"])));
      let body = "";
      stream.setEncoding("utf8");
      stream.on("data", (text: string) => (body += text));
      const ended = new Promise<void>((resolve) => stream.once("end", resolve));
      const started = Date.now();
      const end = new Promise<{ outcome: string; code?: number; afterMs: number }>((resolve) => {
        stream.once("aborted", () => resolve({ outcome: "reset", code: stream.rstCode, afterMs: Date.now() - started }));
        stream.once("close", () => resolve({ outcome: "closed", code: stream.rstCode, afterMs: Date.now() - started }));
        setTimeout(() => resolve({ outcome: "still open", afterMs: Date.now() - started }), withinMs + 1000);
      });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      const write = () => {
        while (written < size && !stream.closed) {
          written += chunk.length;
          if (!stream.write(chunk)) return void stream.once("drain", write);
        }
        if (!stream.closed) stream.end();
      };
      write();

      expect(await status).toBe(413);
      await ended;
      expect(JSON.parse(body)).toMatchObject({ error: { code: "resource_exhausted" } });
      const result = await end;
      expect(result).toMatchObject({ outcome, code: http2.constants.NGHTTP2_NO_ERROR });
      expect(result.afterMs).toBeLessThan(withinMs);
      if (size > 16 * MiB) expect(written).toBeLessThan(32 * MiB);
    } finally {
      session.destroy();
    }
    expect(await normalCall(target.gateway.url)).toBe(200);
  });
});
