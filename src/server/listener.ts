import * as http from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";

export type NodeHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

export interface ListenerOptions {
  handler: NodeHandler;
  /** PEM certificate and key: TLS with ALPN (h2, http/1.1) on the same port. */
  tls?: { cert: string | Buffer; key: string | Buffer };
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
 * does not serve HTTP/1.1, so the first bytes of each connection choose the server.
 */
export function createListener({ handler, tls }: ListenerOptions): Listener {
  const h1 = http.createServer({ keepAliveTimeout: 65_000, requestTimeout: 0 }, handler);
  const h2 = http2.createServer({}, handler);
  const secure = tls ? http2.createSecureServer({ cert: tls.cert, key: tls.key, allowHTTP1: true }, handler) : undefined;

  const sockets = new Set<net.Socket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  for (const server of [h2, secure]) {
    server?.on("session", (session: http2.ServerHttp2Session) => {
      sessions.add(session);
      session.once("close", () => sessions.delete(session));
    });
  }

  // TCP_NODELAY as node:http sets it: without it a streamed event waits for the ACK of the headers (~40 ms).
  const server = net.createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    sniff(socket, (kind) => (kind === "tls" ? secure : kind === "h2" ? h2 : h1)?.emit("connection", socket) ?? socket.destroy());
  });

  return {
    server,
    stopAccepting() {
      server.close();
      h1.closeIdleConnections();
      for (const session of sessions) session.close();
    },
    destroyConnections() {
      for (const socket of sockets) socket.destroy();
    },
  };
}

/** Reads just enough of the first bytes to tell TLS, HTTP/2 prior knowledge and HTTP/1.1 apart. */
function sniff(socket: net.Socket, route: (kind: "tls" | "h2" | "h1") => void): void {
  let received: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
    let kind: "tls" | "h2" | "h1" | undefined;
    if (received[0] === TLS_HANDSHAKE) kind = "tls";
    else if (received.length >= HTTP2_PREFACE.length || !isPrefixOfPreface(received)) kind = isPrefixOfPreface(received) ? "h2" : "h1";
    if (kind === undefined) return; // too few bytes yet to tell
    socket.off("data", onData);
    socket.pause();
    socket.unshift(received);
    route(kind);
    // The HTTP/2 session and the TLS socket read the handle themselves (unshifted bytes
    // included) and must not see it flowing; the HTTP/1.1 server reads it as a stream.
    if (kind === "h1") socket.resume();
  };
  socket.on("data", onData);
  socket.once("error", () => socket.destroy());
}

function isPrefixOfPreface(bytes: Buffer): boolean {
  const length = Math.min(bytes.length, HTTP2_PREFACE.length);
  return bytes.subarray(0, length).equals(HTTP2_PREFACE.subarray(0, length));
}
