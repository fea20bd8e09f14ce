import type { ServerResponse } from "node:http";
import type { Http2ServerResponse } from "node:http2";

export type NodeResponse = ServerResponse | Http2ServerResponse;

/** Connection-specific headers: HTTP/2 forbids them and the server manages them for HTTP/1.1. */
const connectionHeaders = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "content-length"]);

/**
 * Copies fetch Headers (the handler context's response headers and trailers, an error's
 * metadata) onto a Node.js response. A REST response has no trailers, so trailers become headers.
 */
export function setResponseHeaders(res: NodeResponse, headers: Headers): void {
  headers.forEach((value, name) => {
    if (connectionHeaders.has(name)) return;
    if (name === "set-cookie") {
      res.setHeader(name, headers.getSetCookie());
    } else {
      res.setHeader(name, value);
    }
  });
}

/** Writes a complete response whose headers were set with setResponseHeaders. */
export function endResponse(
  res: NodeResponse,
  status: number,
  contentType: string | undefined,
  body: Uint8Array | string,
): void {
  const bytes = typeof body == "string" ? Buffer.from(body) : body;
  if (contentType !== undefined) {
    res.setHeader("content-type", contentType);
  }
  res.setHeader("content-length", bytes.byteLength);
  res.statusCode = status;
  res.end(bytes);
}

/** True when the response can still be written from the start. */
export function canRespond(res: NodeResponse): boolean {
  return !res.headersSent && !res.writableEnded && !res.destroyed;
}

const kBeforeEnd = Symbol("passthrough.beforeEnd");

/** A response of the gateway's own classes (GatewayResponse, GatewayHttp2Response), which honour `beforeEnd`. */
interface EndHooked {
  [kBeforeEnd]?: (() => void) | undefined;
}

/**
 * Asks to be told, once, as the response is ended and before its last bytes are handed over
 * (a unary body, a stream's last chunk or trailers). The gateway's response classes call the
 * hook from `end`, having given every response the slot in their constructor: a property added
 * to each response afterwards, or a wrapped `end`, would change its shape and slow every call.
 */
export function beforeEnd(res: NodeResponse, hook: () => void): void {
  (res as EndHooked)[kBeforeEnd] = hook;
}

/** For the gateway's response classes: the slot, set in their constructor. */
export function initBeforeEnd(res: NodeResponse): void {
  (res as EndHooked)[kBeforeEnd] = undefined;
}

/** For the gateway's response classes, at the top of `end`: runs the hook once. */
export function runBeforeEnd(res: NodeResponse): void {
  const hook = (res as EndHooked)[kBeforeEnd];
  if (hook === undefined) return;
  (res as EndHooked)[kBeforeEnd] = undefined;
  hook();
}
