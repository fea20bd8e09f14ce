import * as http2 from "node:http2";
import type { NodeHandler } from "./listener.js";

export interface Http2Limits {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  http2IdleTimeoutMs: number;
  http2MaxConcurrentStreams: number;
  maxHeaderBytes: number;
}

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
    },
    handler,
  );
  return server;
}
