import { cors as connectCors } from "@connectrpc/connect";
import type { NodeRequest } from "../node-http/request.js";
import type { NodeResponse } from "../node-http/response.js";

export interface CorsOptions {
  /** Origins allowed to call from a browser, exactly as browsers send them (`scheme://host[:port]`); `*` allows any. */
  origins: readonly string[];
}

export interface Cors {
  /**
   * Adds the CORS headers for an allowed origin to the response, and answers a preflight
   * (returns true). A request from an origin not listed gets no CORS headers, so the
   * browser refuses to hand it the answer.
   */
  handle(req: NodeRequest, res: NodeResponse): boolean;
}

// connect's published lists (gRPC-Web and Connect headers), and the gateway's own.
const allowedHeaders = [...connectCors.allowedHeaders, "Authorization"].join(", ");
const exposedHeaders = [...connectCors.exposedHeaders, "X-Journal-Key", "Retry-After", "WWW-Authenticate"].join(", ");
const allowedMethods = connectCors.allowedMethods.join(", ");
/** How long a browser may cache a preflight's answer. */
const PREFLIGHT_MAX_AGE_S = "7200";

/** CORS for the configured origins, preflights included, with the headers gRPC-Web and Connect need. */
export function createCors({ origins }: CorsOptions): Cors {
  const any = origins.includes("*");
  const listed = new Set(origins);
  return {
    handle(req, res) {
      const origin = req.headers.origin;
      if (origin === undefined) return false;
      const preflight = req.method === "OPTIONS" && req.headers["access-control-request-method"] !== undefined;
      res.setHeader("vary", "Origin");
      if (any || listed.has(origin)) {
        res.setHeader("access-control-allow-origin", origin);
        if (!preflight) res.setHeader("access-control-expose-headers", exposedHeaders);
      }
      if (!preflight) return false;
      if (res.hasHeader("access-control-allow-origin")) {
        res.setHeader("access-control-allow-methods", allowedMethods);
        res.setHeader("access-control-allow-headers", allowedHeaders);
        res.setHeader("access-control-max-age", PREFLIGHT_MAX_AGE_S);
      }
      res.writeHead(204);
      res.end();
      return true;
    },
  };
}
