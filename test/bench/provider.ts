// A fast OpenAI-compatible test provider for the benchmark: POST /v1/chat/completions answers a
// precomputed chat.completion (~600 bytes), or an SSE stream when the body asks for one.
// Run alone: node --import tsx test/bench/provider.ts --port 0 --latency-ms 0 --chunks 20 --chunk-interval-ms 5
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

function answerJson(res: http.ServerResponse): void {
  res.writeHead(200, { "content-type": "application/json", "content-length": completion.length });
  res.end(completion);
}

function answerStream(req: http.IncomingMessage, res: http.ServerResponse): void {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  let next = 0;
  let timer: NodeJS.Timeout | undefined;
  const send = (): void => {
    res.write(events[next++]);
    if (next < events.length) {
      timer = setTimeout(send, chunkIntervalMs);
    } else {
      res.end(done);
    }
  };
  res.once("close", () => clearTimeout(timer));
  req.socket.setNoDelay(true);
  send();
}

const server = http.createServer({ keepAliveTimeout: 60_000, noDelay: true }, (req, res) => {
  if (req.method === "GET" && req.url === "/healthz") {
    res.writeHead(200, { "content-type": "text/plain" }).end("ok");
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
    const stream = streamFlag.test(Buffer.concat(parts).toString("latin1"));
    const answer = (): void => (stream ? answerStream(req, res) : answerJson(res));
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
