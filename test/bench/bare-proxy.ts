// The floor: node:http in front of the test provider, forwarding every request through an undici
// Pool (keep-alive, the pool.stream API writing straight into the response) with no checks at all
// (no auth, no parsing, no journal); a caller hanging up aborts the upstream request. pool.stream
// with the request body read whole was the cheapest of the undici APIs measured here.
// Run alone: node --import tsx test/bench/bare-proxy.ts --port 0 --target http://127.0.0.1:PORT
// It prints {"port":N} as one line on stdout once listening.
import http from "node:http";
import { parseArgs } from "node:util";
import { Pool } from "undici";

const { values } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string", default: "0" },
    target: { type: "string" },
    connections: { type: "string", default: "1024" },
  },
});
if (!values.target) {
  process.stderr.write("bare-proxy: --target http://host:port is required\n");
  process.exit(2);
}

const pool = new Pool(values.target, {
  connections: Number(values.connections),
  pipelining: 1,
  keepAliveTimeout: 60_000,
  headersTimeout: 60_000,
  bodyTimeout: 60_000,
});

/** Response headers that describe the upstream connection, not the message. */
const hopByHop = new Set(["connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"]);

const server = http.createServer({ keepAliveTimeout: 60_000, noDelay: true }, (req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (chunk: Buffer) => chunks.push(chunk));
  req.on("end", () => {
    const abort = new AbortController();
    res.once("close", () => {
      if (!res.writableFinished) abort.abort();
    });
    const headers: Record<string, string> = {};
    const contentType = req.headers["content-type"];
    if (contentType) headers["content-type"] = contentType;
    pool
      .stream(
        {
          path: req.url ?? "/",
          method: req.method as "POST",
          headers,
          body: chunks.length === 1 ? chunks[0] : Buffer.concat(chunks),
          signal: abort.signal,
        },
        ({ statusCode, headers: upstreamHeaders }) => {
          const relayed: Record<string, string | string[]> = {};
          for (const [name, value] of Object.entries(upstreamHeaders)) {
            if (value !== undefined && !hopByHop.has(name)) relayed[name] = value;
          }
          res.writeHead(statusCode, relayed);
          return res;
        },
      )
      .catch(() => {
        if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" }).end("bad gateway");
        else res.destroy();
      });
  });
});
server.headersTimeout = 60_000;
server.requestTimeout = 0;
server.maxRequestsPerSocket = 0;

server.listen({ host: values.host, port: Number(values.port) }, () => {
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  process.stdout.write(`${JSON.stringify({ port })}\n`);
});

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  process.on(signal, () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
    void pool.destroy();
    setTimeout(() => process.exit(0), 1000).unref();
  });
}
