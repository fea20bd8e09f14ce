/**
 * A real HTTP server that imitates an OpenAI-compatible provider, for end-to-end tests: it
 * records every request and answers with behaviours each test scripts (queued, one per
 * request), falling back to a plain chat.completion (or a short stream for `"stream": true`).
 */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";

type Json = Record<string, unknown>;
type HeaderMap = Record<string, string | number | readonly string[]>;

/** How one exchange ended. */
export type Outcome = "finished" | "client-closed" | "reset" | "provider-closed";

export interface RecordedRequest {
  method: string;
  /** The request target as received, query string included. */
  path: string;
  /** Header names are lower-case. */
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** The body parsed as JSON; undefined when it is not JSON. */
  json: unknown;
  /** Date.now() when the whole body had arrived. */
  receivedAt: number;
  /** Date.now() when each SSE event (`[DONE]` included) was handed to the socket. */
  sentAt: number[];
  /**
   * Resolves with Date.now() when the client closed the connection before the response was
   * complete (the caller hung up, or the gateway aborted upstream); stays pending otherwise.
   */
  closed: Promise<number>;
  /** Resolves once the exchange is over, however it ended. */
  done: Promise<Outcome>;
}

export interface SseOptions {
  /** Milliseconds between events; default 0. */
  intervalMs?: number;
  /** Write each event in pieces of this many bytes, one write (and one macrotask) each. */
  splitEvery?: number;
  /** End lines with CRLF instead of LF; default false. */
  crlf?: boolean;
  /** Send a `: keep-alive` comment block before each event; default false. */
  comments?: boolean;
  /** Reset the connection after this many events (no `[DONE]`). */
  errorAfter?: number;
  /** Finish with `data: [DONE]`; default true. */
  done?: boolean;
  status?: number;
  headers?: HeaderMap;
}

export type Behaviour =
  | { kind: "json"; status: number; body: unknown; headers?: HeaderMap }
  | { kind: "text"; status: number; text: string; contentType: string; headers?: HeaderMap }
  | { kind: "sse"; events: readonly (Json | string)[]; options: SseOptions }
  | { kind: "reset" }
  | { kind: "resetAfter"; bytes: number; then: Behaviour }
  | { kind: "delay"; ms: number; then: Behaviour }
  | { kind: "hang" }
  | { kind: "handle"; handler: (request: RecordedRequest, res: ServerResponse) => void | Promise<void> };

/** A JSON answer with any status, e.g. `json(429, errorBody("slow down"), { "retry-after": "1" })`. */
export const json = (status: number, body: unknown, headers?: HeaderMap): Behaviour => ({ kind: "json", status, body, headers });
/** A non-JSON answer; content type defaults to text/plain. */
export const text = (status: number, body: string, contentType = "text/plain; charset=utf-8"): Behaviour => ({ kind: "text", status, text: body, contentType });
/** A `text/event-stream` answer: each event is sent as `data: <JSON or the string>` and a blank line. */
export const sse = (events: readonly (Json | string)[], options: SseOptions = {}): Behaviour => ({ kind: "sse", events, options });
/** Resets the connection (TCP RST) without answering. */
export const reset = (): Behaviour => ({ kind: "reset" });
/** Answers as `then` (default: a chat.completion) but resets the connection after `bytes` bytes of body. */
export const resetAfter = (bytes: number, then: Behaviour = json(200, completion("fake-model"))): Behaviour => ({ kind: "resetAfter", bytes, then });
/** Answers as `then` after `ms` milliseconds (unless the client has gone). */
export const delay = (ms: number, then: Behaviour): Behaviour => ({ kind: "delay", ms, then });
/** Never answers; close() cleans up. */
export const hang = (): Behaviour => ({ kind: "hang" });
/** Anything else: the handler answers on `res` itself. */
export const handle = (handler: (request: RecordedRequest, res: ServerResponse) => void | Promise<void>): Behaviour => ({ kind: "handle", handler });

/** An OpenAI error body. */
export const errorBody = (message: string, type = "invalid_request_error", code: string | null = null): Json => ({
  error: { message, type, param: null, code },
});

const usage = { prompt_tokens: 9, completion_tokens: 12, total_tokens: 21 };

/** A chat.completion as OpenAI answers it. */
export function completion(model: string, content = "Hello from the fake provider."): Json {
  return {
    id: "chatcmpl-fake0001",
    object: "chat.completion",
    created: 1_700_000_000,
    model,
    choices: [{ index: 0, message: { role: "assistant", content, refusal: null }, logprobs: null, finish_reason: "stop" }],
    usage,
  };
}

const PIECES = ["Hello", ",", " wörld", " 👋", " from", " the", " fake", " provider", "."];

/** n chat.completion.chunk objects with `delta.content` pieces, then a final one with finish_reason and usage (n + 1 in all). */
export function chunks(n: number, model = "fake-model"): Json[] {
  const chunk = (delta: Json, finishReason: string | null, extra: Json = {}): Json => ({
    id: "chatcmpl-fake0002",
    object: "chat.completion.chunk",
    created: 1_700_000_000,
    model,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
    ...extra,
  });
  const out = Array.from({ length: n }, (_, i) =>
    chunk(i === 0 ? { role: "assistant", content: PIECES[0] } : { content: PIECES[i % PIECES.length] }, null),
  );
  out.push(chunk({}, "stop", { usage }));
  return out;
}

/** The text the chunks spell out, concatenated. */
export function contentOf(chunkList: readonly unknown[]): string {
  return chunkList
    .map((chunk) => ((chunk as { choices?: { delta?: { content?: string } }[] }).choices?.[0]?.delta?.content ?? ""))
    .join("");
}

export interface FakeProvider {
  /** The base URL to configure a provider with, e.g. http://127.0.0.1:40123/v1. */
  url: string;
  /** http://127.0.0.1:PORT */
  origin: string;
  /** Every request received, in order of arrival (recorded once its body is in). */
  requests: RecordedRequest[];
  /** Queues behaviours, consumed one per request. */
  reply(...behaviours: Behaviour[]): FakeProvider;
  /** The behaviour used when the queue is empty; undefined restores the default. */
  setDefault(behaviour: Behaviour | undefined): FakeProvider;
  /** Behaviours still queued. */
  readonly queued: number;
  /** Sockets currently open. */
  readonly openSockets: number;
  /** Connections accepted so far (fewer than requests when keep-alive reuses them). */
  readonly connections: number;
  /** Resolves with the requests once at least `count` have been recorded. */
  waitForRequests(count: number): Promise<RecordedRequest[]>;
  /** Forgets the requests, the queue and the default. */
  clear(): void;
  /** Closes the server and destroys every socket. */
  close(): Promise<void>;
}

export async function startFakeProvider(options: { prefix?: string } = {}): Promise<FakeProvider> {
  const prefix = options.prefix ?? "/v1";
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const waiters: { count: number; resolve: (requests: RecordedRequest[]) => void }[] = [];
  const requests: RecordedRequest[] = [];
  // Exchanges the provider ended on purpose, so that their close is not taken for the client's.
  const outcomes = new WeakMap<ServerResponse, Outcome>();
  let queue: Behaviour[] = [];
  let fallback: Behaviour | undefined;
  let connections = 0;
  let closing = false;

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        timers.delete(timer);
        resolve();
      }, ms);
      timers.add(timer);
    });

  function defaultBehaviour(request: RecordedRequest): Behaviour {
    if (request.method !== "POST" || request.path.split("?")[0] !== `${prefix}/chat/completions`) {
      return json(404, errorBody(`Unknown path ${request.method} ${request.path}`));
    }
    const body = (request.json ?? {}) as { model?: unknown; stream?: unknown };
    const model = typeof body.model === "string" ? body.model : "fake-model";
    return body.stream === true ? sse(chunks(4, model)) : json(200, completion(model));
  }

  /** Runs one behaviour; `budget` counts the body bytes left before a reset. */
  async function run(behaviour: Behaviour, request: RecordedRequest, res: ServerResponse, budget: { left: number }) {
    const socket = res.socket;
    const resetNow = async () => {
      outcomes.set(res, "reset");
      await new Promise(setImmediate); // let what was written reach the client first
      socket?.resetAndDestroy();
    };
    /** Writes within the budget; false once the connection is gone or was reset. */
    const write = async (bytes: Buffer): Promise<boolean> => {
      if (res.destroyed) return false;
      const part = bytes.length > budget.left ? bytes.subarray(0, budget.left) : bytes;
      budget.left -= part.length;
      const ok = part.length === 0 || (await new Promise<boolean>((resolve) => res.write(part, (error) => resolve(!error))));
      if (ok && part.length === bytes.length) return true;
      if (ok) await resetNow();
      return false;
    };
    switch (behaviour.kind) {
      case "json":
      case "text": {
        const isJson = behaviour.kind === "json";
        const body = Buffer.from(isJson ? JSON.stringify(behaviour.body) : behaviour.text);
        const contentType = isJson ? "application/json" : behaviour.contentType;
        res.writeHead(behaviour.status, { "content-type": contentType, "content-length": body.length, ...behaviour.headers });
        if (await write(body)) res.end();
        return;
      }
      case "sse": {
        const { intervalMs = 0, splitEvery, crlf = false, comments = false, errorAfter, done = true } = behaviour.options;
        const eol = crlf ? "\r\n" : "\n";
        res.writeHead(behaviour.options.status ?? 200, { "content-type": "text/event-stream; charset=utf-8", ...behaviour.options.headers });
        res.flushHeaders();
        const events = behaviour.events.map((event) => (typeof event === "string" ? event : JSON.stringify(event)));
        if (done && errorAfter === undefined) events.push("[DONE]");
        for (const [index, data] of events.entries()) {
          if (index === errorAfter) return resetNow();
          if (index > 0 && intervalMs > 0) await sleep(intervalMs);
          const frame = Buffer.from(`${comments ? `: keep-alive${eol}${eol}` : ""}data: ${data}${eol}${eol}`);
          const step = Math.max(1, splitEvery ?? frame.length);
          for (let at = 0; at < frame.length; at += step) {
            if (!(await write(frame.subarray(at, at + step)))) return;
            if (step < frame.length) await new Promise(setImmediate);
          }
          request.sentAt.push(Date.now());
        }
        if (errorAfter !== undefined) return resetNow();
        res.end();
        return;
      }
      case "reset":
        return resetNow();
      case "resetAfter":
        return run(behaviour.then, request, res, { left: behaviour.bytes });
      case "delay":
        await sleep(behaviour.ms);
        if (!res.destroyed) await run(behaviour.then, request, res, budget);
        return;
      case "hang":
        return;
      case "handle":
        return behaviour.handler(request, res);
    }
  }

  const server = createServer({ keepAlive: true }, async (req, res) => {
    let resolveClosed!: (at: number) => void;
    let resolveDone!: (outcome: Outcome) => void;
    const request: RecordedRequest = {
      method: req.method ?? "GET",
      path: req.url ?? "/",
      headers: req.headers,
      body: Buffer.alloc(0),
      json: undefined,
      receivedAt: 0,
      sentAt: [],
      closed: new Promise((resolve) => (resolveClosed = resolve)),
      done: new Promise((resolve) => (resolveDone = resolve)),
    };
    res.on("close", () => {
      let outcome = outcomes.get(res);
      if (outcome === undefined) {
        outcome = res.writableFinished ? "finished" : closing ? "provider-closed" : "client-closed";
      }
      if (outcome === "client-closed") resolveClosed(Date.now());
      resolveDone(outcome);
    });
    const parts: Buffer[] = [];
    try {
      for await (const part of req) parts.push(part as Buffer);
    } catch {
      // The client went away mid-body: record what arrived; `closed` tells the rest.
    }
    request.body = Buffer.concat(parts);
    request.receivedAt = Date.now();
    try {
      request.json = JSON.parse(request.body.toString("utf8"));
    } catch {
      request.json = undefined;
    }
    requests.push(request);
    for (const waiter of [...waiters]) {
      if (requests.length >= waiter.count) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve([...requests]);
      }
    }
    if (res.destroyed) return;
    try {
      await run(queue.shift() ?? fallback ?? defaultBehaviour(request), request, res, { left: Infinity });
    } catch (error) {
      // A broken test handler: fail loudly on the wire rather than hang.
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
      res.end(`fake provider: ${String(error)}`);
    }
  });
  server.on("connection", (socket) => {
    connections++;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const provider: FakeProvider = {
    url: origin + prefix,
    origin,
    requests,
    reply(...behaviours) {
      queue.push(...behaviours);
      return provider;
    },
    setDefault(behaviour) {
      fallback = behaviour;
      return provider;
    },
    get queued() {
      return queue.length;
    },
    get openSockets() {
      return sockets.size;
    },
    get connections() {
      return connections;
    },
    waitForRequests(count) {
      if (requests.length >= count) return Promise.resolve([...requests]);
      return new Promise((resolve) => waiters.push({ count, resolve }));
    },
    clear() {
      requests.length = 0;
      queue = [];
      fallback = undefined;
    },
    async close() {
      closing = true;
      for (const timer of timers) clearTimeout(timer);
      timers.clear();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
  };
  return provider;
}
