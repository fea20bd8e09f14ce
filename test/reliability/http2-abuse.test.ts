/**
 * HTTP/2 abuse over raw frames (a conforming client such as node:http2 would not send them):
 * each row is an attack, the frames the gateway must answer with, and how soon it must close.
 */
import * as http2 from "node:http2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectRawHttp2, ErrorCode, Flag, frame, FrameType, headerBlock, headers, ping, requestHeaders, rstStream, type Frame, type RawHttp2, type RawHttp2Options } from "./support/raw-http2.js";
import { ABUSE_KEY, normalCall, startAbuseTarget, type AbuseTarget } from "./support/abuse.js";

const LIMITS = { headersTimeoutMs: 1000, requestTimeoutMs: 1200, http2IdleTimeoutMs: 1200 };
const SLACK_MS = 1500;
/** http2MaxConcurrentStreams and maxHeaderBytes, left at their defaults here. */
const MAX_STREAMS = 100;
const MAX_HEADER_BYTES = 16 * 1024;

let target: AbuseTarget;
beforeAll(async () => {
  target = await startAbuseTarget(LIMITS);
});
afterAll(() => target?.close());

/** A chat request whose body is still to come. */
const chat = (streamId: number) => headers(streamId, requestHeaders("POST", "/api/v1/prompts/passthrough/local/", [["content-type", "application/json"], ["authorization", `Bearer ${ABUSE_KEY.key.reveal()}`]]), Flag.END_HEADERS);
const health = (extra: readonly (readonly [string, string])[] = []) => requestHeaders("GET", "/healthz", extra);
/** A header block sent as HEADERS and CONTINUATION frames of at most 16 KiB (the default frame size). */
function headerFrames(streamId: number, block: Buffer): Buffer[] {
  const frames: Buffer[] = [];
  for (let at = 0; at < block.length; at += 16_000) {
    const last = at + 16_000 >= block.length;
    frames.push(frame(at === 0 ? FrameType.HEADERS : FrameType.CONTINUATION, (at === 0 ? Flag.END_STREAM : 0) | (last ? Flag.END_HEADERS : 0), streamId, block.subarray(at, at + 16_000)));
  }
  return frames;
}
const resets = (peer: RawHttp2, code: number) => peer.frames.filter((f) => f.type === FrameType.RST_STREAM && f.payload.readUInt32BE(0) === code);
const answered = (streamId: number) => (f: Frame) => f.type === FrameType.HEADERS && f.streamId === streamId;

interface Row {
  name: string;
  connect?: RawHttp2Options;
  attack(peer: RawHttp2): Promise<void> | void;
  /** What the attack must have got by the time the connection closed (or the row's wait ended). */
  expectFrames(peer: RawHttp2): void | Promise<void>;
  /** The connection must be closed by the gateway within this; undefined: it stays usable. */
  closedWithinMs?: number;
  /** It must not close before this (it follows a deadline). */
  notBeforeMs?: number;
  /** A flood: the gateway's peak memory while it lasts must stay within MEMORY_BOUND_BYTES of before. */
  flood?: true;
}

const MEMORY_BOUND_BYTES = 64 * 1024 * 1024;

const times = <T>(n: number, make: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => make(i));

const rows: Row[] = [
  {
    name: "rapid reset (HEADERS then RST_STREAM, up to 2,000 times)",
    attack: (peer) => peer.sendPaced(times(2000, (i) => Buffer.concat([headers(2 * i + 1, health()), rstStream(2 * i + 1)]))),
    expectFrames: (peer) => expect(peer.goawayCode()).toBe(ErrorCode.ENHANCE_YOUR_CALM),
    closedWithinMs: 3000,
    flood: true,
  },
  {
    name: "a stream flood beyond the concurrent-stream limit",
    attack: (peer) => peer.sendPaced(times(1000, (i) => chat(2 * i + 1))),
    expectFrames(peer) {
      // A stream past the limit ends the session (nghttp2: a connection error once the peer has
      // acknowledged the limit); no stream past the limit was ever served.
      const served = peer.frames.filter((f) => (f.type === FrameType.HEADERS || f.type === FrameType.RST_STREAM) && f.payload.readUInt32BE(0) !== ErrorCode.REFUSED_STREAM);
      expect(served.every((f) => f.streamId < 2 * MAX_STREAMS)).toBe(true);
      const goaway = peer.frames.find((f) => f.type === FrameType.GOAWAY);
      if (goaway) expect(goaway.payload.readUInt32BE(0)).toBeLessThan(2 * MAX_STREAMS);
    },
    closedWithinMs: 3000,
    flood: true,
  },
  {
    name: "a PING flood",
    attack: (peer) => peer.sendPaced(times(500, (i) => ping(i)), 20),
    expectFrames: (peer) => expect(peer.goawayCode()).toBe(ErrorCode.ENHANCE_YOUR_CALM),
    closedWithinMs: 3000,
    flood: true,
  },
  {
    name: "a header list over maxHeaderBytes",
    attack: (peer) => void peer.send(...headerFrames(1, health([["x-big", "a".repeat(MAX_HEADER_BYTES + 1024)]])), headers(3, health())),
    async expectFrames(peer) {
      expect(await peer.waitFor(answered(3), 2000)).toBeDefined();
      expect(resets(peer, ErrorCode.ENHANCE_YOUR_CALM).map((f) => f.streamId)).toEqual([1]);
    },
  },
  {
    name: "a header flood (5,000 fields in one block)",
    attack: (peer) => void peer.send(...headerFrames(1, health(times(5000, (i) => [`x-${i}`, "v"] as const))), headers(3, health())),
    async expectFrames(peer) {
      expect(await peer.waitFor(answered(3), 2000)).toBeDefined();
      expect(resets(peer, ErrorCode.ENHANCE_YOUR_CALM).map((f) => f.streamId)).toEqual([1]);
    },
    flood: true,
  },
  {
    name: "a CONTINUATION flood that never ends the header block",
    attack: (peer) => peer.sendPaced([frame(FrameType.HEADERS, 0, 1, health()), ...times(20_000, (i) => frame(FrameType.CONTINUATION, 0, 1, headerBlock([[`x-${i}`, "v"]])))], 500),
    expectFrames: () => {},
    closedWithinMs: 3000,
    flood: true,
  },
  {
    name: "a request body that dribbles forever",
    async attack(peer) {
      peer.send(chat(1));
      const dribble = setInterval(() => peer.send(frame(FrameType.DATA, 0, 1, Buffer.from("{"))), 50);
      await peer.waitFor((f) => f.type === FrameType.RST_STREAM, LIMITS.requestTimeoutMs + SLACK_MS);
      clearInterval(dribble);
    },
    expectFrames: (peer) => expect(resets(peer, ErrorCode.CANCEL).map((f) => f.streamId)).toEqual([1]),
  },
  {
    name: "a connection that never opens a stream",
    attack: () => {},
    expectFrames: (peer) => expect(peer.goawayCode()).toBe(ErrorCode.NO_ERROR),
    closedWithinMs: LIMITS.headersTimeoutMs + SLACK_MS,
    notBeforeMs: LIMITS.headersTimeoutMs * 0.9,
  },
  {
    name: "a connection left idle after its call",
    attack: (peer) => void peer.send(headers(1, health())),
    expectFrames: (peer) => expect(peer.goawayCode()).toBe(ErrorCode.NO_ERROR),
    closedWithinMs: LIMITS.http2IdleTimeoutMs + SLACK_MS,
    notBeforeMs: LIMITS.http2IdleTimeoutMs * 0.9,
  },
  {
    name: "a peer that never acknowledges the gateway's SETTINGS",
    connect: { ackSettings: false },
    attack: (peer) => void peer.send(headers(1, health())),
    expectFrames: (peer) => expect(peer.goawayCode()).toBe(ErrorCode.SETTINGS_TIMEOUT),
    closedWithinMs: LIMITS.headersTimeoutMs + SLACK_MS,
    notBeforeMs: LIMITS.headersTimeoutMs * 0.9,
  },
];

describe("an HTTP/2 peer that abuses the connection", () => {
  it.each(rows)("$name: answered as documented, bounded in time, and the gateway serves on", async ({ connect, attack, expectFrames, closedWithinMs, notBeforeMs, flood }) => {
    const peer = await connectRawHttp2(target.gateway.url, connect);
    const rssBefore = target.gateway.rssBytes();
    target.gateway.resetPeak();
    const started = Date.now();
    await attack(peer);
    const waitMs = closedWithinMs ?? 500;
    const closedAfter = await Promise.race([peer.closed, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), waitMs + 200))]);
    await expectFrames(peer);
    if (closedWithinMs === undefined) {
      expect(peer.socket.destroyed).toBe(false);
    } else {
      expect(closedAfter).toBeDefined();
      expect(Date.now() - started).toBeLessThan(closedWithinMs + 200);
      if (notBeforeMs !== undefined) expect(closedAfter).toBeGreaterThanOrEqual(notBeforeMs);
    }
    peer.destroy();
    if (flood) expect(target.gateway.peakRssBytes() - rssBefore).toBeLessThan(MEMORY_BOUND_BYTES);
    expect(await normalCall(target.gateway.url)).toBe(200);
  });

  it("keeps a session whose calls are cancelled after a while, as a caller's deadline does", async () => {
    target.provider.setDefault({ kind: "hang" });
    const session = http2.connect(target.gateway.url);
    try {
      const calls = Array.from({ length: MAX_STREAMS }, () => {
        const stream = session.request({ ":method": "POST", ":path": "/api/v1/prompts/passthrough/local/", "content-type": "application/json", authorization: `Bearer ${ABUSE_KEY.key.reveal()}` });
        stream.on("error", () => {});
        stream.end(JSON.stringify({ model: "m", messages: [] }));
        return stream;
      });
      await new Promise((resolve) => setTimeout(resolve, 1200));
      for (const stream of calls) stream.close(http2.constants.NGHTTP2_CANCEL);
      const health = session.request({ ":method": "GET", ":path": "/healthz" });
      const status = await new Promise((resolve) => {
        health.once("response", (h) => resolve(h[":status"]));
        health.once("close", () => resolve("closed without an answer"));
      });
      health.resume();
      expect(status).toBe(200);
      expect(session.destroyed).toBe(false);
    } finally {
      session.close();
      target.provider.setDefault(undefined);
    }
  });
});
