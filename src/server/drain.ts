import type { ServerResponse } from "node:http";
import { Code, ConnectError } from "@connectrpc/connect";
import type { NodeRequest } from "../node-http/request.js";
import type { NodeResponse } from "../node-http/response.js";
import { errorEnvelope } from "../rest/errors.js";
import type { Listener } from "./listener.js";

export interface Drain {
  /** Aborted when the drain begins: readiness and health say so at once; new requests are refused after the drain delay. */
  readonly draining: AbortSignal;
  /** Aborted once the deadline has passed: every call still in flight is cancelled. */
  readonly cancelled: AbortSignal;
  /** Counts a request until its response closes. */
  track(res: NodeResponse): void;
  /**
   * While draining, answers a request that would become a call 503 UNAVAILABLE, on every
   * protocol (gRPC, gRPC-Web and Connect clients read an HTTP 503 as UNAVAILABLE), and returns
   * true. Such a request is no call: it has no journal key and nothing of it was done, so a
   * client may send it again to another instance.
   */
  refuse(req: NodeRequest, res: NodeResponse): boolean;
  /**
   * The shutdown sequence: readiness turns 503, and for `delayMs` (`server.drainDelayMs`) the
   * gateway serves on as before, so that a load balancer takes it out before its connections
   * close; then it stops accepting (HTTP/2 peers get GOAWAY, idle HTTP/1.1 connections
   * close, answers not yet begun say `Connection: close`), let what is in flight finish for up
   * to `timeoutMs`, cancel the rest and give their answers a moment to go out, then close every
   * connection. Resolves when every response has closed, so that each call has ended (and is
   * in the journal's and the sinks' queues) before they are flushed.
   */
  run(listener: Listener, timeoutMs: number, delayMs?: number): Promise<void>;
}

/** How long cancelled calls get to write their error, and destroyed connections to close. */
const CANCEL_GRACE_MS = 1000;

const shuttingDown = new ConnectError("the gateway is shutting down: send the call again, to another instance", Code.Unavailable);
const refusalBody = Buffer.from(JSON.stringify(errorEnvelope(shuttingDown, undefined)));
/** What a call still in flight at the deadline fails with, on every protocol (a REST stream ends with it as an error event). */
const cutOff = new ConnectError("the gateway is shutting down: the call was still in flight at the shutdown deadline", Code.Unavailable);

export function createDrain(): Drain {
  const draining = new AbortController();
  const cancelled = new AbortController();
  const open = new Set<NodeResponse>();
  let idle: (() => void) | undefined;
  /** Past the drain delay: requests that would become calls are refused. */
  let refusing = false;

  const settled = (ms: number): Promise<void> => {
    if (open.size === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      idle = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  };

  return {
    draining: draining.signal,
    cancelled: cancelled.signal,
    track(res) {
      open.add(res);
      if (refusing) closeAfter(res);
      res.once("close", () => {
        open.delete(res);
        if (open.size === 0) idle?.();
      });
    },
    refuse(_req, res) {
      if (!refusing) return false;
      res.writeHead(503, { "content-type": "application/json", "content-length": refusalBody.byteLength });
      res.end(refusalBody);
      return true;
    },
    async run(listener, timeoutMs, delayMs = 0) {
      draining.abort();
      if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
      refusing = true;
      for (const res of open) closeAfter(res);
      listener.stopAccepting();
      await settled(timeoutMs);
      cancelled.abort(cutOff);
      await settled(CANCEL_GRACE_MS);
      listener.destroyConnections();
      await settled(CANCEL_GRACE_MS);
    },
  };
}

/** An HTTP/1.1 answer not yet begun closes its connection after it (HTTP/2 has GOAWAY instead). */
function closeAfter(res: NodeResponse): void {
  if (!res.headersSent && "shouldKeepAlive" in res) (res as ServerResponse).shouldKeepAlive = false;
}
