import * as http from "node:http";
import type { NodeHandler } from "./listener.js";

export interface Http1Limits {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  maxHeaderBytes: number;
}

/**
 * The HTTP/1.1 server the listener hands sockets to. It never listens itself, so it is told
 * 'listening': Node starts checking headersTimeout and requestTimeout only then.
 */
export function createHttp1Server(handler: NodeHandler, limits: Http1Limits): http.Server {
  const server = http.createServer(
    {
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      // How often those two are checked: a deadline is enforced within this much of it.
      connectionsCheckingInterval: Math.min(1000, Math.ceil(limits.headersTimeoutMs / 10)),
      maxHeaderSize: limits.maxHeaderBytes,
    },
    handler,
  );
  server.emit("listening");
  return server;
}
