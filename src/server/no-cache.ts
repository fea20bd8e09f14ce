import type { ServerResponse } from "node:http";
import type { Http2ServerResponse } from "node:http2";

/** SPEC section 9: every response of every protocol, errors included, is never cached. */
export const NO_CACHE_HEADERS: Readonly<Record<string, string>> = {
  "cache-control": "no-cache, no-store, must-revalidate, private, max-age=0",
  pragma: "no-cache",
  expires: "0",
};

/**
 * Set by the gateway's response classes (http1-server.ts, http2-server.ts) as each response is
 * made, before any handler runs, because connect-node writes some responses (a body it cannot
 * decode, an unknown content type) without running interceptors.
 */
export function setNoCacheHeaders(res: ServerResponse | Http2ServerResponse): void {
  res.setHeader("cache-control", NO_CACHE_HEADERS["cache-control"]);
  res.setHeader("pragma", NO_CACHE_HEADERS.pragma);
  res.setHeader("expires", NO_CACHE_HEADERS.expires);
}
