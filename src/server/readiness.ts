import type { JournalWriterStats } from "../journal/writer.js";
import type { SinkStats } from "../signals/dispatcher.js";
import type { Store } from "../store/store.js";
import type { NodeHandler } from "./listener.js";

/** What `GET /readyz` answers, as JSON. */
export interface ReadinessReport {
  /** `draining` once shutdown has begun; `unavailable` while the store does not answer; else `ready`. */
  readonly status: "ready" | "draining" | "unavailable";
  readonly store: { readonly reachable: boolean };
  /** Each signal sink's delivery state; a `retrying` sink does not make the gateway unready. */
  readonly sinks: ReadonlyArray<{ readonly name: string; readonly state: SinkStats["state"] }>;
  /** Entries waiting for the database: in memory (`queued`) and in the spool file (`spooled`). */
  readonly journal: { readonly queued: number; readonly spooled: number };
}

export interface ReadinessOptions {
  store: Pick<Store, "ping">;
  sinks(): readonly SinkStats[];
  /** The journal writer's figures; absent when the gateway does not journal. */
  journal?(): Pick<JournalWriterStats, "queued" | "spoolPending" | "spooled">;
  /** Aborted when shutdown begins. */
  draining: AbortSignal;
  /** A ping that has not answered within this counts as unreachable. Default 1 s. */
  pingTimeoutMs?: number;
  /** A ping's answer is reused for this long, so that probes stay cheap. Default 1 s. */
  cacheMs?: number;
}

export interface Readiness {
  report(): Promise<ReadinessReport>;
  /** Whether the gateway should be sent calls: neither draining nor without its store. */
  ready(): Promise<boolean>;
}

/**
 * Readiness (`GET /readyz`, and gRPC health through `ready()`): the store pinged with a short
 * timeout, its answer cached so that any number of probes cost at most one ping per `cacheMs`
 * (concurrent probes share the ping in flight), the sinks' and the journal's state read as they are.
 */
export function createReadiness({ store, sinks, journal, draining, pingTimeoutMs = 1000, cacheMs = 1000 }: ReadinessOptions): Readiness {
  let last: { at: number; reachable: boolean } | undefined;
  let pinging: Promise<boolean> | undefined;
  /** The store's ping until it answers: a stalled database is asked once, not once per probe, so that pings cannot fill its pool. */
  let unanswered: Promise<boolean> | undefined;

  const ping = async (): Promise<boolean> => {
    unanswered ??= store.ping().then(
      () => true,
      () => false,
    ).finally(() => (unanswered = undefined));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(resolve, pingTimeoutMs, false)));
    try {
      return await Promise.race([unanswered, timeout]);
    } finally {
      clearTimeout(timer);
    }
  };
  const reachable = (): Promise<boolean> => {
    if (last !== undefined && performance.now() - last.at < cacheMs) return Promise.resolve(last.reachable);
    pinging ??= ping().then((answer) => {
      last = { at: performance.now(), reachable: answer };
      pinging = undefined;
      return answer;
    });
    return pinging;
  };

  const report = async (): Promise<ReadinessReport> => {
    const storeReachable = await reachable();
    const figures = journal?.();
    return {
      status: draining.aborted ? "draining" : storeReachable ? "ready" : "unavailable",
      store: { reachable: storeReachable },
      sinks: sinks().map(({ name, state }) => ({ name, state })),
      journal: { queued: figures === undefined ? 0 : figures.queued + figures.spoolPending, spooled: figures?.spooled ?? 0 },
    };
  };

  return {
    report,
    ready: async () => !draining.aborted && (await reachable()) && !draining.aborted,
  };
}

/** `GET /readyz`: the report as JSON, 200 when ready, else 503; the caller has set the no-cache headers. */
export function createReadinessHandler(readiness: Readiness): NodeHandler {
  return (req, res) => {
    readiness.report().then((report) => {
      res.writeHead(report.status === "ready" ? 200 : 503, { "content-type": "application/json" });
      res.end(req.method === "HEAD" ? "" : JSON.stringify(report));
    });
  };
}
