import type { IncomingMessage } from "node:http";
import type * as net from "node:net";

/**
 * What is read and discarded after an early answer: a body up to this much larger than what was
 * read (one a little over the body limit) is read to its end, so that the close is clean.
 */
const LINGER_BYTES = 16 * 1024 * 1024;
/** How long the client has to read the answer before a connection it still sends on is reset. */
const LINGER_MS = 2_000;

/**
 * Closes a connection after its last response without losing that response. Closing a socket
 * while the peer still sends makes the kernel reset the connection, and a client whose write
 * fails on the reset before it read the answer never sees the answer. So the connection is
 * half-closed (the client sees the end), what still arrives is discarded until the request is
 * complete, then the socket closes; past LINGER_BYTES it is no longer read (the peer stalls,
 * without a reset), and it is destroyed LINGER_MS after the answer.
 */
export function lingeringClose(socket: net.Socket, request?: IncomingMessage): void {
  const requestComplete = () => request?.complete === true;
  if (socket.destroyed) return;
  const timer = setTimeout(() => socket.destroy(), LINGER_MS).unref();
  socket.once("close", () => clearTimeout(timer));
  socket.end();
  const close = () => {
    socket.off("data", onData);
    // Nothing more is unread: close once the response is written, as Node's destroySoon() does.
    if (socket.writableFinished) socket.destroy();
    else socket.once("finish", () => socket.destroy());
  };
  let drained = 0;
  const onData = (chunk: Buffer) => {
    drained += chunk.length;
    if (requestComplete()) close();
    else if (drained > LINGER_BYTES) socket.pause();
    // Node's parser pauses the socket when the request it pushes the body into is not read
    // (a handler that gave up on it destroyed it); the body is being discarded here anyway.
    else socket.resume();
  };
  if (requestComplete()) return close();
  // A 'data' listener also takes the bytes from Node's HTTP parser, which then still sees them.
  // The handler may have stopped reading the body: resumed, the rest goes nowhere.
  socket.on("data", onData);
  socket.resume();
  request?.resume();
}

/**
 * Makes Node's HTTP/1.1 server linger instead of closing at once when it ends a
 * `Connection: close` response: it calls `socket.destroySoon()` then (lib/_http_server.js,
 * resOnFinish), which destroys the socket as soon as the response is written.
 */
export function lingerOnClose(socket: net.Socket, request: IncomingMessage): void {
  socket.destroySoon = () => lingeringClose(socket, request);
}
