import * as http from "node:http";
import type * as net from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { errorEnvelope } from "../rest/errors.js";
import { HttpStatusHint } from "../transcoding/http-status.js";
import type { NodeHandler } from "./listener.js";
import { lingerOnClose, lingeringClose } from "./lingering-close.js";
import { endAfterHook, endedWhileWaiting, initBeforeEnd } from "../node-http/response.js";
import { NO_CACHE_HEADERS, setNoCacheHeaders } from "./no-cache.js";

export interface Http1Limits {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  maxHeaderBytes: number;
}

/** The response being written on each socket, so that a protocol error does not interrupt it. */
const responses = new WeakMap<net.Socket, http.ServerResponse>();

/**
 * The gateway's HTTP/1.1 response. Never cached from the start, so that the answers Node writes
 * without running the handler (400 for a missing Host, 417) carry the headers too. An answer
 * given before the request's body was read closes the connection, lingering so that it arrives.
 * Its `end` runs the response's `beforeEnd` hook first, and waits for what the hook appended (`endAfterHook`).
 */
class GatewayResponse extends http.ServerResponse {
  constructor(req: http.IncomingMessage) {
    super(req);
    initBeforeEnd(this);
    setNoCacheHeaders(this);
  }

  override end(...args: unknown[]): this {
    // Decided now: while the end waits for the turn's appends, the rest of the body may arrive.
    closeIfBodyUnread(this);
    endAfterHook(this, () => (super.end as (...args: unknown[]) => this)(...args));
    return this;
  }

  override writeHead(
    statusCode: number,
    statusMessageOrHeaders?: string | http.OutgoingHttpHeaders | http.OutgoingHttpHeader[],
    headers?: http.OutgoingHttpHeaders | http.OutgoingHttpHeader[],
  ): this {
    closeIfBodyUnread(this);
    // Node takes headers in the second place when it is not a status message.
    return super.writeHead(statusCode, statusMessageOrHeaders as string, headers);
  }
}
endedWhileWaiting(GatewayResponse);

/** An answer given before the request's body was read closes the connection, lingering so that the answer arrives. */
function closeIfBodyUnread(res: http.ServerResponse): void {
  const { req } = res;
  // A queued (pipelined) response has no socket yet; a request connect-node gave up on, none any more.
  const socket = res.socket ?? req.socket;
  if (socket) responses.set(socket, res);
  if (socket && !res.headersSent && hasUnreadBody(req)) {
    res.setHeader("connection", "close");
    lingerOnClose(socket, req);
  }
}

function hasUnreadBody(req: http.IncomingMessage): boolean {
  if (req.complete) return false;
  const length = req.headers["content-length"];
  return req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
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
      ServerResponse: GatewayResponse,
    },
    handler,
  );
  const answers = protocolErrorAnswers(limits);
  server.on("clientError", (error: NodeJS.ErrnoException, socket: net.Socket) => answerClientError(error, socket, answers));
  server.emit("listening");
  return server;
}

const answered = new WeakSet<net.Socket>();

/**
 * Answers what Node's parser refused (or a request that timed out) as every response of the
 * gateway is answered: never cached, with a JSON body, and `Connection: close`. Node reports
 * each later parse failure on the same socket again; only the first is answered.
 */
function answerClientError(error: NodeJS.ErrnoException, socket: net.Socket, answers: Map<number, Buffer>): void {
  if (answered.has(socket)) return;
  answered.add(socket);
  const status = statusOf(error.code);
  const inProgress = responses.get(socket);
  if (status === undefined || !socket.writable || (inProgress?.headersSent && !inProgress.writableFinished)) {
    socket.destroy();
    return;
  }
  socket.write(answers.get(status)!);
  lingeringClose(socket);
}

function statusOf(code: string | undefined): number | undefined {
  if (code === "ERR_HTTP_REQUEST_TIMEOUT") return 408;
  if (code === "HPE_HEADER_OVERFLOW") return 431;
  if (code === "HPE_CHUNK_EXTENSIONS_OVERFLOW") return 413;
  // Every other parser error is the request's fault; a socket error (ECONNRESET) has no answer.
  return code?.startsWith("HPE_") ? 400 : undefined;
}

/** The raw responses, built once: Smarter's error envelope, without a journal key (no call began). */
function protocolErrorAnswers(limits: Http1Limits): Map<number, Buffer> {
  const rows: [number, Code, string][] = [
    [400, Code.InvalidArgument, "the request is not valid HTTP/1.1"],
    [408, Code.DeadlineExceeded, `the request did not arrive in time (headers within ${limits.headersTimeoutMs} ms, the whole request within ${limits.requestTimeoutMs} ms)`],
    [413, Code.ResourceExhausted, "a chunk extension is too large"],
    [431, Code.ResourceExhausted, `the request headers are larger than ${limits.maxHeaderBytes} bytes`],
  ];
  return new Map(
    rows.map(([status, code, description]) => {
      const body = JSON.stringify(errorEnvelope(new ConnectError(description, code, undefined, undefined, new HttpStatusHint(description, status)), undefined));
      const head = [
        `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}`,
        ...Object.entries(NO_CACHE_HEADERS).map(([name, value]) => `${name}: ${value}`),
        "content-type: application/json",
        `content-length: ${Buffer.byteLength(body)}`,
        "connection: close",
      ];
      return [status, Buffer.from(`${head.join("\r\n")}\r\n\r\n${body}`)];
    }),
  );
}
