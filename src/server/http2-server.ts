import * as http2 from "node:http2";
import { endAfterHook, endedWhileWaiting, initBeforeEnd } from "../node-http/response.js";
import type { NodeHandler } from "./listener.js";
import { setNoCacheHeaders } from "./no-cache.js";

export interface Http2Limits {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  http2IdleTimeoutMs: number;
  http2MaxConcurrentStreams: number;
  maxHeaderBytes: number;
}

const { NGHTTP2_NO_ERROR, NGHTTP2_CANCEL, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_SETTINGS_TIMEOUT } = http2.constants;

/** PINGs a peer may send in one window; more is a flood (each one costs an answer). */
const MAX_PINGS = 100;
const PING_WINDOW_MS = 10_000;
/**
 * Streams a peer may reset within PREMATURE_MS of opening them, when they are also more than
 * half of the session's streams: HTTP/2 rapid reset (CVE-2023-44487), detected as Envoy does.
 * Calls cancelled later (a caller's deadline) do not count.
 */
const MAX_PREMATURE_RESETS = 100;
const PREMATURE_MS = 1_000;
/** After an answer given before the request was read: how much more of it is read, and how long it may take. */
const LINGER_BYTES = 16 * 1024 * 1024;
const LINGER_MS = 2_000;
/** How long a session told to go away may take to close before it is destroyed. */
const GOAWAY_GRACE_MS = 5_000;

/** The gateway's HTTP/2 response: never cached from the start; its `end` runs the response's `beforeEnd` hook first, and waits for what the hook appended (`endAfterHook`). */
class GatewayHttp2Response extends http2.Http2ServerResponse {
  constructor(stream: http2.ServerHttp2Stream) {
    super(stream);
    initBeforeEnd(this);
    setNoCacheHeaders(this);
  }

  override end(...args: unknown[]): this {
    endAfterHook(this, () => {
      // Before the stream ends, not after: Node closes a server stream at once (RST_STREAM NO_ERROR)
      // when it has answered and its request was never read, unless the request is flowing by then.
      if (!this.stream.readableEnded) drainUnreadRequest(this.stream);
      (super.end as (...args: unknown[]) => this)(...args);
    });
    return this;
  }
}
endedWhileWaiting(GatewayHttp2Response);

/**
 * The cleartext HTTP/2 server the listener hands sockets to (TLS sockets too, once ALPN chose
 * h2), with the limits of a public endpoint: Node's defaults allow unlimited concurrent streams.
 */
export function createHttp2Server(handler: NodeHandler, limits: Http2Limits): http2.Http2Server {
  const server = http2.createServer(
    {
      settings: { maxConcurrentStreams: limits.http2MaxConcurrentStreams, maxHeaderListSize: limits.maxHeaderBytes },
      maxHeaderListPairs: 128,
      // Of the gateway's own PINGs unanswered, and of SETTINGS entries in one frame.
      maxOutstandingPings: 10,
      maxSettings: 32,
      // Past these the session is destroyed: frames that break the protocol, streams over the limit.
      maxSessionInvalidFrames: 100,
      maxSessionRejectedStreams: 100,
      // MB of frames and header tables held per session; past it new streams are refused.
      maxSessionMemory: 10,
      Http2ServerResponse: GatewayHttp2Response,
    },
    handler,
  );
  server.on("session", (session: http2.ServerHttp2Session) => guardSession(session, limits));
  return server;
}

/**
 * Deadlines and abuse limits Node's HTTP/2 does not have: a new session must acknowledge the
 * gateway's SETTINGS (until then its limits do not bind the peer) and open its first stream
 * within headersTimeoutMs, and goes away after http2IdleTimeoutMs without streams (a PING does
 * not count as use); each request must arrive within requestTimeoutMs; PING floods and rapid
 * resets end the session with ENHANCE_YOUR_CALM.
 */
function guardSession(session: http2.ServerHttp2Session, limits: Http2Limits): void {
  let openStreams = 0;
  let streams = 0;
  let prematureResets = 0;
  let idle: NodeJS.Timeout | undefined;
  const settled = setTimeout(() => {
    if (session.pendingSettingsAck) abort(session, NGHTTP2_SETTINGS_TIMEOUT);
    else if (streams === 0) goAway(session);
  }, limits.headersTimeoutMs).unref();
  session.once("close", () => {
    clearTimeout(settled);
    clearTimeout(idle);
  });

  session.on("stream", (stream: http2.ServerHttp2Stream) => {
    if (streams++ === 0) idle = setTimeout(() => openStreams === 0 && goAway(session), limits.http2IdleTimeoutMs).unref();
    openStreams++;
    const openedAt = Date.now();
    const deadline = setTimeout(() => {
      if (!stream.closed && !stream.state.remoteClose) stream.close(NGHTTP2_CANCEL);
    }, limits.requestTimeoutMs).unref();
    stream.once("close", () => {
      clearTimeout(deadline);
      if (--openStreams === 0) idle?.refresh();
      if (stream.rstCode === NGHTTP2_NO_ERROR || Date.now() - openedAt > PREMATURE_MS) return;
      if (++prematureResets >= MAX_PREMATURE_RESETS && prematureResets * 2 > streams) abort(session, NGHTTP2_ENHANCE_YOUR_CALM);
    });
    // A response that did not end through GatewayHttp2Response.end (a stream answered directly).
    stream.once("finish", () => {
      if (!stream.readableEnded) setImmediate(drainUnreadRequest, stream);
    });
  });

  let pings = 0;
  let pingWindowStart = Date.now();
  session.on("ping", () => {
    const now = Date.now();
    if (now - pingWindowStart > PING_WINDOW_MS) {
      pingWindowStart = now;
      pings = 0;
    }
    if (++pings > MAX_PINGS) abort(session, NGHTTP2_ENHANCE_YOUR_CALM);
  });
}

/** Streams whose unread request is being drained, so that the response's end and its stream's finish do not both start it. */
const draining = new WeakSet<http2.ServerHttp2Stream>();

/**
 * The response is complete but the client is still sending its request. The rest is read and
 * discarded, up to LINGER_BYTES or LINGER_MS, so that a body a little over the limit ends
 * normally: Node's HTTP/2 client does not close a stream reset under its pending writes. Past
 * either, the stream is ended with RST_STREAM NO_ERROR (RFC 9113 section 8.1): stop sending.
 */
function drainUnreadRequest(stream: http2.ServerHttp2Stream): void {
  if (stream.closed || stream.destroyed || stream.state.remoteClose || draining.has(stream)) return;
  draining.add(stream);
  let drained = 0;
  stream.on("data", (chunk: Buffer) => {
    drained += chunk.length;
    if (drained > LINGER_BYTES && !stream.closed) stream.close(NGHTTP2_NO_ERROR);
  });
  const timer = setTimeout(() => stream.closed || stream.close(NGHTTP2_NO_ERROR), LINGER_MS).unref();
  stream.once("close", () => clearTimeout(timer));
}

/** GOAWAY NO_ERROR: streams already open finish; destroyed if the peer does not close in time. */
function goAway(session: http2.ServerHttp2Session): void {
  if (session.closed || session.destroyed) return;
  session.close();
  setTimeout(() => session.destroy(), GOAWAY_GRACE_MS).unref();
}

/** A peer that broke the rules: one GOAWAY with this code, and the connection is closed. */
function abort(session: http2.ServerHttp2Session, code: number): void {
  if (!session.destroyed) session.destroy(new Error(`HTTP/2 session ended with error code ${code}`), code);
}
