/**
 * The parts of the sink-fault suite: a webhook receiver that can hang, a reader of the gateway's
 * per-sink signal metrics, and the same calls timed on two gateways, interleaved.
 */
import { createServer, type ServerResponse } from "node:http";
import type { SignalEvent, SignalSink } from "../../../src/signals/sink.js";
import { createProtocolClient, type ProtocolClient } from "../../support/clients.js";

/** How long the receiver takes to answer while it hangs. */
export const HANG_MS = 10_000;

export interface WebhookReceiver {
  readonly url: string;
  /** `answer`: 204 at once; `hang`: 204 after HANG_MS. */
  mode: "answer" | "hang";
  /** The events of every batch answered with a 204, in the order answered. */
  readonly accepted: SignalEvent[];
  /** Requests received but not answered yet (and not abandoned by the gateway). */
  readonly pending: number;
  /** Answers at once, and from now on, what it was holding. */
  recover(): void;
  close(): Promise<void>;
}

/** A real HTTP server for the webhook sink, answering at once or only after HANG_MS. */
export async function startWebhookReceiver(mode: WebhookReceiver["mode"] = "answer"): Promise<WebhookReceiver> {
  const accepted: SignalEvent[] = [];
  const held = new Map<ServerResponse, { timer: NodeJS.Timeout; answer: () => void }>();
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const answer = () => {
        held.delete(response);
        if (response.destroyed) return;
        response.writeHead(204).end(() => accepted.push(...(JSON.parse(Buffer.concat(chunks).toString("utf8")) as SignalEvent[])));
      };
      if (receiver.mode === "answer") return answer();
      const timer = setTimeout(answer, HANG_MS);
      held.set(response, { timer, answer });
      response.once("close", () => {
        clearTimeout(timer);
        held.delete(response);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  const receiver: WebhookReceiver = {
    url: `http://127.0.0.1:${port}/signals`,
    mode,
    accepted,
    get pending() {
      return held.size;
    },
    recover() {
      receiver.mode = "answer";
      for (const { timer, answer } of [...held.values()]) {
        clearTimeout(timer);
        answer();
      }
    },
    async close() {
      for (const { timer } of held.values()) clearTimeout(timer);
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
  return receiver;
}

/** One sink's figures as `GET /metrics` shows them. */
export interface SinkFigures {
  queued: number;
  delivered: number;
  retries: number;
  dropped: number;
}

const SERIES = {
  queued: "passthrough_signal_queue_depth",
  delivered: "passthrough_signals_delivered_total",
  retries: "passthrough_signal_retries_total",
  dropped: "passthrough_signals_dropped_total",
} as const;

/** Reads the sink's four series from the Prometheus text; a missing one fails. */
export async function sinkFigures(gatewayUrl: string, sink: string): Promise<SinkFigures> {
  const response = await fetch(`${gatewayUrl}/metrics`);
  if (response.status !== 200) throw new Error(`GET /metrics answered ${response.status}`);
  const text = await response.text();
  const read = (series: string) => {
    const line = text.split("\n").find((candidate) => candidate.startsWith(`${series}{sink="${sink}"} `));
    if (line === undefined) throw new Error(`no ${series}{sink="${sink}"} in /metrics`);
    return Number(line.slice(line.lastIndexOf(" ") + 1));
  };
  return { queued: read(SERIES.queued), delivered: read(SERIES.delivered), retries: read(SERIES.retries), dropped: read(SERIES.dropped) };
}

/** Polls `check` until it holds, or fails with what it last saw. */
export async function eventually<T>(what: string, read: () => Promise<T>, check: (value: T) => boolean, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (check(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms; last seen ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A sink of the test's own that keeps every event: the order the gateway emitted them in. */
export function recorderSink(): { sink: SignalSink; events: SignalEvent[] } {
  const events: SignalEvent[] = [];
  return {
    events,
    sink: {
      name: "recorder",
      async deliver(batch) {
        events.push(...batch);
      },
      async close() {},
    },
  };
}

/** The first occurrence of each event id, in order: delivery is at least once. */
export function deduplicated(events: readonly SignalEvent[]): SignalEvent[] {
  const seen = new Set<string>();
  return events.filter((event) => !seen.has(event.id) && seen.add(event.id));
}

/** The calls every comparison makes, in order: mostly REST, with gRPC and Connect ones among them. */
export const CALLS: readonly ("rest" | "grpc" | "connect")[] = Array.from({ length: 60 }, (_, i) => (i % 10 === 3 ? "grpc" : i % 10 === 7 ? "connect" : "rest"));

export interface Latencies {
  /** Each call's duration in ms, in CALLS order. */
  readonly plain: number[];
  readonly faulty: number[];
  /** Calls that did not succeed, as `gateway protocol code`. */
  readonly failed: string[];
}

/** Makes the CALLS on both gateways, call by call, alternating which goes first, so that both share the machine's noise. */
export async function compareLatency(plainUrl: string, faultyUrl: string, providerName: string): Promise<Latencies> {
  const clients = (url: string) => ({ rest: createProtocolClient("rest", url), grpc: createProtocolClient("grpc", url), connect: createProtocolClient("connect", url) });
  const sides = { plain: clients(plainUrl), faulty: clients(faultyUrl) };
  const result: Latencies = { plain: [], faulty: [], failed: [] };
  const timed = async (side: "plain" | "faulty", client: ProtocolClient) => {
    const started = performance.now();
    const answer = await client.unary(providerName, { model: "m", messages: [{ role: "user", content: "hi" }] });
    result[side].push(performance.now() - started);
    if (!answer.ok) result.failed.push(`${side} ${client.protocol} ${answer.code ?? answer.status}`);
  };
  try {
    for (const [i, protocol] of CALLS.entries()) {
      const order = i % 2 === 0 ? (["plain", "faulty"] as const) : (["faulty", "plain"] as const);
      for (const side of order) await timed(side, sides[side][protocol]);
    }
  } finally {
    for (const side of Object.values(sides)) for (const client of Object.values(side)) client.close();
  }
  return result;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}
