import type { IncomingMessage } from "node:http";
import type { Http2ServerRequest } from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { HttpStatusHint } from "../transcoding/http-status.js";

export type NodeRequest = IncomingMessage | Http2ServerRequest;

const emptyBody = new Uint8Array(0);

/**
 * Reads the request body, up to `maxBytes`. A larger body (by content-length, or counted as it
 * arrives) rejects at once with `overLimit`'s error (default RESOURCE_EXHAUSTED, REST status 413); the rest is
 * then discarded by Node.js so the connection stays usable.
 */
export function readRequestBody(req: NodeRequest, maxBytes: number, overLimit: (maxBytes: number, declared?: number) => ConnectError = tooLarge): Promise<Uint8Array> {
  const declared = req.headers["content-length"];
  if (declared !== undefined && Number(declared) > maxBytes) {
    return Promise.reject(overLimit(maxBytes, Number(declared)));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const cleanup = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
    };
    const onData = (chunk: Buffer) => {
      total += chunk.byteLength;
      if (total > maxBytes) {
        cleanup();
        req.resume();
        reject(overLimit(maxBytes));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks.length === 0 ? emptyBody : chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, total));
    };
    const onError = (error: Error) => {
      cleanup();
      reject(new ConnectError("failed to read the request body", Code.Canceled, undefined, undefined, error));
    };
    const onClose = () => {
      cleanup();
      reject(new ConnectError("the client closed the connection", Code.Canceled));
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onClose);
  });
}

function tooLarge(maxBytes: number): ConnectError {
  const message = `request body is larger than ${maxBytes} bytes`;
  return new ConnectError(message, Code.ResourceExhausted, undefined, undefined, new HttpStatusHint(message, 413));
}

/** The request headers as fetch Headers; HTTP/2 pseudo-headers are left out. */
export function requestHeaders(req: NodeRequest): Headers {
  const raw = req.rawHeaders;
  const headers = new Headers();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (raw[i].charCodeAt(0) !== 58 /* ":" */) {
      headers.append(raw[i], raw[i + 1]);
    }
  }
  return headers;
}

/** The absolute request URL, as connect-node gives it to handlers. */
export function requestUrl(req: NodeRequest): string {
  const encrypted = "encrypted" in req.socket && req.socket.encrypted === true;
  const authority = "authority" in req ? req.authority : req.headers.host;
  return `${encrypted ? "https" : "http"}://${authority ?? "localhost"}${req.url ?? "/"}`;
}
