import type { ServerResponse } from "node:http";
import type { Http2ServerResponse } from "node:http2";
import { afterAppends } from "../durable/turn-appends.js";

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
const kEndWaits = Symbol("passthrough.endWaits");

/** A response of the gateway's own classes (GatewayResponse, GatewayHttp2Response), which honour `beforeEnd`. */
interface EndHooked {
  [kBeforeEnd]?: (() => void) | undefined;
  /** True while its `end` waits for the turn's appends. */
  [kEndWaits]?: boolean;
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

/** For the gateway's response classes: the slots, set in their constructor. */
export function initBeforeEnd(res: NodeResponse): void {
  (res as EndHooked)[kBeforeEnd] = undefined;
  (res as EndHooked)[kEndWaits] = false;
}

/**
 * For the gateway's response classes, as their `end`: runs the hook once, then hands `end`
 * (the rest of the response's own) to `afterAppends` when the hook appended to a local file
 * this turn (a call's journal entry and signals, `appendInTurn`), so that the last bytes leave
 * once those are written; otherwise, or without a hook, ends at once. While it waits, the
 * response counts as ended (`endedWhileWaiting`) and another `end` is ignored.
 */
export function endAfterHook(res: NodeResponse, end: () => void): void {
  const hooked = res as EndHooked;
  if (hooked[kEndWaits]) return;
  const hook = hooked[kBeforeEnd];
  if (hook !== undefined) {
    hooked[kBeforeEnd] = undefined;
    hook();
    const waits = afterAppends(() => {
      hooked[kEndWaits] = false;
      // No caller to throw to any more: a response that cannot end is destroyed with the error.
      try {
        end();
      } catch (error) {
        res.destroy(error as Error);
      }
    });
    if (waits) {
      hooked[kEndWaits] = true;
      return;
    }
  }
  end();
}

/**
 * Makes `writableEnded` of the class's responses true while their `end` waits too, so that no
 * part of the gateway answers them again meanwhile. Node declares it an accessor on a prototype
 * above the class (its types, a property), so it is redefined on the class's own.
 */
export function endedWhileWaiting(responseClass: { prototype: NodeResponse }): void {
  let proto: object | null = Object.getPrototypeOf(responseClass.prototype);
  let ended: (() => boolean) | undefined;
  while (proto !== null && ended === undefined) {
    ended = Object.getOwnPropertyDescriptor(proto, "writableEnded")?.get;
    proto = Object.getPrototypeOf(proto);
  }
  if (ended === undefined) throw new Error("writableEnded is not an accessor of the response's prototypes");
  const own = ended;
  Object.defineProperty(responseClass.prototype, "writableEnded", {
    configurable: true,
    get(this: EndHooked & NodeResponse) {
      return this[kEndWaits] === true || own.call(this);
    },
  });
}
