// A fast OpenAI-compatible test provider for the benchmark: POST /v1/chat/completions answers a
// precomputed chat.completion (~600 bytes), or an SSE stream when the body asks for one. The soak
// asks it for faults with a `"bench_fault"` field in the body, and reads its counters at GET /stats.
// Run alone: node --import tsx test/bench/provider.ts --port 0 --latency-ms 0 --chunks 20 --chunk-interval-ms 5 [--faults]
// It prints {"port":N} as one line on stdout once listening.
import http from "node:http";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "0" },
    "latency-ms": { type: "string", default: "0" },
    chunks: { type: "string", default: "20" },
    "chunk-interval-ms": { type: "string", default: "5" },
    /** Answer `"bench_fault"` requests and count answers (GET /stats); off for the throughput runs. */
    faults: { type: "boolean", default: false },
  },
});
const latencyMs = Number(values["latency-ms"]);
const chunkCount = Math.max(1, Number(values.chunks));
const chunkIntervalMs = Number(values["chunk-interval-ms"]);

const created = 1_741_569_952;
const id = "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT";
const model = "gpt-4o-mini-2024-07-18";

const completion = Buffer.from(
  JSON.stringify({
    id,
    object: "chat.completion",
    created,
    model,
    choices: [
      {
        index: 0,
        message: {
          role: "assistant",
          content: "A gateway should add as little as it can: bytes, CPU and time.",
          refusal: null,
          annotations: [],
        },
        logprobs: null,
        finish_reason: "stop",
      },
    ],
    usage: {
      prompt_tokens: 19,
      completion_tokens: 27,
      total_tokens: 46,
      prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
    },
    service_tier: "default",
    system_fingerprint: "fp_06737a9306",
  }),
);

/** Precomputed SSE events: role first, one word per chunk, finish_reason on the last, then [DONE]. */
const events: Buffer[] = Array.from({ length: chunkCount }, (_, index) => {
  const last = index === chunkCount - 1;
  const delta = index === 0 ? { role: "assistant", content: "" } : last ? {} : { content: `word${index} ` };
  const chunk = {
    id,
    object: "chat.completion.chunk",
    created,
    model,
    system_fingerprint: "fp_06737a9306",
    choices: [{ index: 0, delta, logprobs: null, finish_reason: last ? "stop" : null }],
  };
  return Buffer.from(`data: ${JSON.stringify(chunk)}\n\n`);
});
const done = Buffer.from("data: [DONE]\n\n");
const notFound = Buffer.from('{"error":{"message":"not found","type":"invalid_request_error"}}');
const streamFlag = /"stream"\s*:\s*true/;
const faultFlag = /"bench_fault"\s*:\s*"([a-z0-9-]+)"/;
const statusOfFault: Record<string, number> = { "500": 500, "400": 400, "429": 429 };
const upstreamError = (message: string): Buffer => Buffer.from(JSON.stringify({ error: { message, type: "bench_fault" } }));
/** How long the "delay" fault waits before a unary answer (far longer than the deadlines the soak sets with it) … */
const faultDelayMs = 2000;
/** … and between a delayed stream's events. */
const faultEventIntervalMs = 100;
/** Events a "break" stream sends before the provider resets the connection. */
const eventsBeforeBreak = 3;

/** Answers of one kind: requests seen, answers sent in full, answers the peer (the gateway) closed before they ended. */
interface AnswerCounts {
  requests: number;
  completed: number;
  closedByPeer: number;
}
/**
 * What the soak reads back at GET /stats: answers still open, all answers, and those of each
 * `bench_fault`. A caller's hang-up reaches the provider as an answer the gateway closed early.
 */
const stats = { open: 0, all: counts(), byFault: {} as Record<string, AnswerCounts> };

function counts(): AnswerCounts {
  return { requests: 0, completed: 0, closedByPeer: 0 };
}

/** Counts one answer until it ends or the peer closes it; resets the provider causes itself are not the peer's. */
function track(res: http.ServerResponse, fault: string | undefined): { ownReset(): void } {
  let own = false;
  const tallies = fault === undefined ? [stats.all] : [stats.all, (stats.byFault[fault] ??= counts())];
  stats.open++;
  for (const tally of tallies) tally.requests++;
  res.once("close", () => {
    stats.open--;
    for (const tally of tallies) {
      if (res.writableFinished) tally.completed++;
      else if (!own) tally.closedByPeer++;
    }
  });
  return { ownReset: () => void (own = true) };
}

function answerJson(res: http.ServerResponse): void {
  res.writeHead(200, { "content-type": "application/json", "content-length": completion.length });
  res.end(completion);
}

function answerStream(req: http.IncomingMessage, res: http.ServerResponse, intervalMs = chunkIntervalMs, breakAfter = Infinity, onBreak?: () => void): void {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  let next = 0;
  let timer: NodeJS.Timeout | undefined;
  const send = (): void => {
    if (next === breakAfter) {
      onBreak?.();
      req.socket.destroy();
      return;
    }
    res.write(events[next++]);
    if (next < events.length) {
      timer = setTimeout(send, intervalMs);
    } else {
      res.end(done);
    }
  };
  res.once("close", () => clearTimeout(timer));
  req.socket.setNoDelay(true);
  send();
}

/** A fault the soak asked for in the body; false when the body asked for none. */
function answerFault(fault: string, stream: boolean, req: http.IncomingMessage, res: http.ServerResponse, answer: () => void, ownReset: () => void): boolean {
  const status = statusOfFault[fault];
  if (status !== undefined) {
    const body = upstreamError(`bench fault ${fault}`);
    const headers: http.OutgoingHttpHeaders = { "content-type": "application/json", "content-length": body.length };
    // Longer than the gateway's Retry-After cap, so that the 429 is relayed at once.
    if (status === 429) headers["retry-after"] = "3600";
    res.writeHead(status, headers).end(body);
  } else if (fault === "reset") {
    ownReset();
    req.socket.destroy();
  } else if (fault === "break" && stream) {
    answerStream(req, res, chunkIntervalMs, eventsBeforeBreak, ownReset);
  } else if (fault === "delay" && stream) {
    answerStream(req, res, faultEventIntervalMs);
  } else if (fault === "delay") {
    const timer = setTimeout(answer, faultDelayMs);
    res.once("close", () => clearTimeout(timer));
  } else {
    return false;
  }
  return true;
}

const server = http.createServer({ keepAliveTimeout: 60_000, noDelay: true }, (req, res) => {
  if (req.method === "GET" && req.url === "/healthz") {
    res.writeHead(200, { "content-type": "text/plain" }).end("ok");
    return;
  }
  if (req.method === "GET" && req.url === "/stats") {
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(stats));
    return;
  }
  if (req.method !== "POST" || !req.url?.endsWith("/chat/completions")) {
    req.resume();
    res.writeHead(404, { "content-type": "application/json", "content-length": notFound.length }).end(notFound);
    return;
  }
  const parts: Buffer[] = [];
  req.on("data", (part: Buffer) => parts.push(part));
  req.on("end", () => {
    const text = Buffer.concat(parts).toString("latin1");
    const stream = streamFlag.test(text);
    const answer = (): void => (stream ? answerStream(req, res) : answerJson(res));
    if (values.faults) {
      const fault = faultFlag.exec(text)?.[1];
      const { ownReset } = track(res, fault);
      if (fault !== undefined && answerFault(fault, stream, req, res, answer, ownReset)) return;
    }
    if (latencyMs > 0) setTimeout(answer, latencyMs);
    else answer();
  });
});
server.headersTimeout = 60_000;
server.requestTimeout = 0;
server.maxRequestsPerSocket = 0;

server.listen({ host: values.host, port: Number(values.port), backlog: 4096 }, () => {
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  process.stdout.write(`${JSON.stringify({ port })}\n`);
});

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  });
}
