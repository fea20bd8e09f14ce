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
