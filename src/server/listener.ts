import type * as http from "node:http";
import type * as http2 from "node:http2";
import * as net from "node:net";
import * as tls from "node:tls";
import { createHttp1Server, type Http1Limits } from "./http1-server.js";
import { createHttp2Server, type Http2Limits } from "./http2-server.js";

export type NodeHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/** The connection limits of `server.*` in the configuration (src/config/schema.ts documents each). */
export interface ConnectionLimits extends Http1Limits, Http2Limits {
  firstBytesTimeoutMs: number;
  maxConnections: number;
}

export interface ListenerOptions {
  handler: NodeHandler;
  /** PEM certificate and key: TLS with ALPN (h2, http/1.1) on the same port. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  limits: ConnectionLimits;
}

export interface Listener {
  readonly server: net.Server;
  /** Stops accepting, asks HTTP/2 peers to go away, and closes idle HTTP/1.1 connections. */
  stopAccepting(): void;
  /** Destroys every connection that is still open. */
  destroyConnections(): void;
}

const HTTP2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const TLS_HANDSHAKE = 0x16;

/**
 * One port for HTTP/1.1, cleartext HTTP/2 with prior knowledge (as gRPC clients use) and,
 * with a certificate, TLS with ALPN. Node's cleartext `http2.createServer({allowHTTP1})`
 * does not serve HTTP/1.1, so the first bytes of each connection choose the server; after a
 * TLS handshake, ALPN chooses between the same two, so that both carry the same limits.
 */
export function createListener({ handler, tls: certificate, limits }: ListenerOptions): Listener {
  const h1 = createHttp1Server(handler, limits);
  const h2 = createHttp2Server(handler, limits);
  const secure = certificate && createTlsServer(certificate, limits, (socket) => (socket.alpnProtocol === "h2" ? h2 : h1).emit("connection", socket));

  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });

  // TCP_NODELAY as node:http sets it: without it a streamed event waits for the ACK of the headers (~40 ms).
  const server = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    sniff(socket, limits.firstBytesTimeoutMs, (kind) => (kind === "tls" ? secure : kind === "h2" ? h2 : h1)?.emit("connection", socket) ?? socket.destroy());
  });
  // Past it Node closes each new connection as soon as it is accepted.
  server.maxConnections = limits.maxConnections;

  return {
    server,
    stopAccepting() {
      server.close();
      h1.closeIdleConnections();
      for (const session of sessions) session.close();
    },
    destroyConnections() {
      for (const socket of sockets) socket.destroy();
      // Stops the HTTP/1.1 server's timer that checks the header and request deadlines.
      h1.close();
    },
  };
}

/** Terminates TLS (the handshake within firstBytesTimeoutMs) and hands over the decrypted socket. */
function createTlsServer(
  certificate: NonNullable<ListenerOptions["tls"]>,
  limits: ConnectionLimits,
  route: (socket: tls.TLSSocket) => void,
): tls.Server {
  const server = tls.createServer({
    cert: certificate.cert,
    key: certificate.key,
    ALPNProtocols: ["h2", "http/1.1"],
    handshakeTimeout: limits.firstBytesTimeoutMs,
  });
  server.on("secureConnection", route);
  server.on("tlsClientError", (_error: Error, socket: tls.TLSSocket) => socket.destroy());
  return server;
}

/**
 * Reads just enough of the first bytes to tell TLS, HTTP/2 prior knowledge and HTTP/1.1 apart.
 * A connection that has not told within `timeoutMs` (silent, or dribbling the HTTP/2 preface)
 * is closed: no server has it yet, so no other deadline applies.
 */
function sniff(socket: net.Socket, timeoutMs: number, route: (kind: "tls" | "h2" | "h1") => void): void {
  const deadline = setTimeout(() => socket.destroy(), timeoutMs);
  let received: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
    let kind: "tls" | "h2" | "h1" | undefined;
    if (received[0] === TLS_HANDSHAKE) kind = "tls";
    else if (received.length >= HTTP2_PREFACE.length || !isPrefixOfPreface(received)) kind = isPrefixOfPreface(received) ? "h2" : "h1";
    if (kind === undefined) return; // too few bytes yet to tell
    clearTimeout(deadline);
    socket.off("data", onData);
    socket.pause();
    socket.unshift(received);
    route(kind);
    // The HTTP/2 session and the TLS socket read the handle themselves (unshifted bytes
    // included) and must not see it flowing; the HTTP/1.1 server reads it as a stream.
    if (kind === "h1") socket.resume();
  };
  socket.on("data", onData);
  socket.once("close", () => clearTimeout(deadline));
  socket.once("error", () => socket.destroy());
}

function isPrefixOfPreface(bytes: Buffer): boolean {
  const length = Math.min(bytes.length, HTTP2_PREFACE.length);
  return bytes.subarray(0, length).equals(HTTP2_PREFACE.subarray(0, length));
}
