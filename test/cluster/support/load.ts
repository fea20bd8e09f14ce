import * as grpc from "@grpc/grpc-js";
import { createClient, ConnectError, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { PassthroughService, type PassthroughStreamResponse } from "../../../src/gen/smarter/prompt/v1/passthrough_pb.js";
import { codeName, createGrpcJsClient, request } from "../../support/clients.js";

/** The calls the mixed load is made of: each protocol's unary call, and streams over REST, gRPC and Connect. */
export const CALL_KINDS = ["rest-unary", "rest-stream", "grpc-unary", "grpc-stream", "connect-unary", "connect-stream", "grpc-web-unary"] as const;
export type CallKind = (typeof CALL_KINDS)[number];

export interface CallResult {
  kind: CallKind;
  ok: boolean;
  /** The `x-journal-key` the caller got, when it got headers. */
  journalKey?: string;
  /** What the client reported when the call failed: "HTTP 502", "UNAVAILABLE: …", "ABORTED: …", "body: terminated". */
  error?: string;
  /** Date.now() at the start and the end of the call. */
  startedAt: number;
  endedAt: number;
}

export interface LoadOptions {
  url: string;
  authorization: string;
  /** Callers running at once, each making one call after the other. */
  concurrency: number;
  /** Every call is bounded: past this the caller gives up and the call counts as hung. */
  callTimeoutMs: number;
  /** Chunks a stream must deliver to count as complete (the provider's, without `[DONE]`). */
  streamChunks: number;
}

export interface Load {
  /** Stops starting calls; resolves with every call's result once the last one has ended. */
  stop(): Promise<CallResult[]>;
  /** The results so far. */
  readonly results: readonly CallResult[];
}

/** Mixed load through one URL: every protocol, unary and streams, until stopped. */
export function startLoad(options: LoadOptions): Load {
  const calls = createCalls(options);
  const results: CallResult[] = [];
  let stopping = false;
  const workers = Array.from({ length: options.concurrency }, async (_, worker) => {
    for (let n = worker; !stopping; n += options.concurrency) {
      const kind = CALL_KINDS[n % CALL_KINDS.length];
      results.push(await bounded(kind, calls[kind], options.callTimeoutMs));
    }
  });
  return {
    results,
    async stop() {
      stopping = true;
      await Promise.all(workers);
      calls.close();
      return results;
    },
  };
}

/** What one call learned; thrown errors are the client's own reports. */
interface Attempt {
  journalKey?: string;
  error?: string;
}

type CallFunction = (signal: AbortSignal) => Promise<Attempt>;

/** Runs one call under its bound; a client that ignores the abort still cannot hold the load past it. */
async function bounded(kind: CallKind, call: CallFunction, timeoutMs: number): Promise<CallResult> {
  const startedAt = Date.now();
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<Attempt>((resolve) => {
    timer = setTimeout(() => {
      controller.abort();
      resolve({ error: `hung: no end within ${timeoutMs} ms` });
    }, timeoutMs);
  });
  const attempt: Attempt = await Promise.race([call(controller.signal).catch((error: unknown) => ({ error: `threw: ${String(error)}` })), hung]);
  clearTimeout(timer);
  return { kind, ok: attempt.error === undefined, journalKey: attempt.journalKey, error: attempt.error, startedAt, endedAt: Date.now() };
}

const BODY = { model: "m", messages: [{ role: "user", content: "hello" }] };

function createCalls({ url, authorization, callTimeoutMs, streamChunks }: LoadOptions): Record<CallKind, CallFunction> & { close(): void } {
  const grpcClient = createGrpcJsClient(url);
  const connect2 = createClient(PassthroughService, createConnectTransport({ baseUrl: url, httpVersion: "2" }));
  const connect1 = createClient(PassthroughService, createConnectTransport({ baseUrl: url, httpVersion: "1.1" }));
  const grpcWeb = createClient(PassthroughService, createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1" }));
  const headers = { authorization };
  const rest = async (signal: AbortSignal, stream: boolean): Promise<Attempt> => {
    let response: Response;
    try {
      response = await fetch(`${url}/api/v1/prompts/passthrough/local/`, {
        method: "POST",
        headers: { ...headers, "content-type": "application/json" },
        body: JSON.stringify({ ...BODY, stream }),
        signal,
      });
    } catch (error) {
      return { error: `fetch: ${describeError(error)}` };
    }
    const journalKey = response.headers.get("x-journal-key") ?? undefined;
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      return { journalKey, error: `body: ${describeError(error)}` };
    }
    if (response.status !== 200) return { journalKey, error: `HTTP ${response.status}` };
    if (stream && !text.trimEnd().endsWith("data: [DONE]")) return { journalKey, error: "stream ended without [DONE]" };
    return { journalKey };
  };
  return {
    "rest-unary": (signal) => rest(signal, false),
    "rest-stream": (signal) => rest(signal, true),
    "grpc-unary": (signal) =>
      new Promise((resolve) => {
        let journalKey: string | undefined;
        const call = grpcClient.passthrough(request("local", BODY), grpcMetadata(authorization), { deadline: Date.now() + callTimeoutMs }, (error) => {
          resolve({ journalKey, error: error ? `${codeName(error.code).toUpperCase()}: ${error.details}` : undefined });
        });
        call.on("metadata", (m: grpc.Metadata) => (journalKey = String(m.get("x-journal-key")[0] ?? "") || undefined));
        signal.addEventListener("abort", () => call.cancel());
      }),
    "grpc-stream": (signal) =>
      new Promise((resolve) => {
        let journalKey: string | undefined;
        let received = 0;
        const call = grpcClient.passthroughStream(request("local", { ...BODY, stream: true }), grpcMetadata(authorization), { deadline: Date.now() + callTimeoutMs });
        call.on("metadata", (m: grpc.Metadata) => (journalKey = String(m.get("x-journal-key")[0] ?? "") || undefined));
        call.on("data", () => received++);
        call.on("error", (error: grpc.ServiceError) => resolve({ journalKey, error: `${codeName(error.code).toUpperCase()}: ${error.details}` }));
        call.on("end", () => resolve({ journalKey, error: received === streamChunks ? undefined : `stream ended after ${received} chunks` }));
        signal.addEventListener("abort", () => call.cancel());
      }),
    "connect-unary": (signal) => connectUnary(connect2, headers, signal, callTimeoutMs),
    "grpc-web-unary": (signal) => connectUnary(grpcWeb, headers, signal, callTimeoutMs),
    "connect-stream": async (signal) => {
      let journalKey: string | undefined;
      let received = 0;
      try {
        const stream = connect1.passthroughStream(request("local", { ...BODY, stream: true }), {
          headers,
          signal,
          timeoutMs: callTimeoutMs,
          onHeader: (h) => (journalKey = h.get("x-journal-key") ?? undefined),
        });
        for await (const _ of stream as AsyncIterable<PassthroughStreamResponse>) received++;
      } catch (error) {
        return { journalKey, error: describeConnect(error) };
      }
      return { journalKey, error: received === streamChunks ? undefined : `stream ended after ${received} chunks` };
    },
    close() {
      grpcClient.close();
    },
  };
}

async function connectUnary(client: Client<typeof PassthroughService>, headers: Record<string, string>, signal: AbortSignal, timeoutMs: number): Promise<Attempt> {
  let journalKey: string | undefined;
  try {
    await client.passthrough(request("local", BODY), {
      headers,
      signal,
      timeoutMs,
      onHeader: (h) => (journalKey = h.get("x-journal-key") ?? undefined),
    });
    return { journalKey };
  } catch (error) {
    return { journalKey, error: describeConnect(error) };
  }
}

function describeConnect(error: unknown): string {
  const connectError = ConnectError.from(error);
  return `${codeName(connectError.code).toUpperCase()}: ${connectError.rawMessage}`;
}

function describeError(error: unknown): string {
  const cause = (error as { cause?: unknown }).cause;
  return `${(error as Error).message}${cause instanceof Error ? ` (${cause.message})` : ""}`;
}

function grpcMetadata(authorization: string): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set("authorization", authorization);
  return metadata;
}
