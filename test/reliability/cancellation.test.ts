import type { ServerResponse } from "node:http";
import * as http2 from "node:http2";
import * as net from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PassthroughRequestSchema } from "../../src/gen/smarter/prompt/v1/passthrough_pb.js";
import { chunks, handle, startFakeProvider, type FakeProvider, type RecordedRequest } from "../support/fake-provider.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

// The cancellation matrix: every protocol, on every HTTP version it runs on, unary and
// streaming, with the caller resetting its stream, closing its connection, or letting its
// deadline pass. In every cell the provider sees its request closed within 1 s; with the fast
// paths on and off, since each door handles the caller's going away on its own.
let provider: FakeProvider;
const gateways: Record<string, TestGateway> = {};
const DEADLINE_MS = 300;

beforeAll(async () => {
  provider = await startFakeProvider();
  // Unary calls hang; streams go on for far longer than any cell lasts.
  provider.setDefault(
    handle((request, res) => {
      if ((request.json as { stream?: boolean } | undefined)?.stream === true) streamSlowly(res);
    }),
  );
  const providers = [{ name: "local", baseUrl: provider.url, retries: 0 }];
  gateways.on = await startTestGateway({ providers, server: { fastPaths: true } });
  gateways.off = await startTestGateway({ providers, server: { fastPaths: false } });
});
afterAll(async () => {
  await Promise.all(Object.values(gateways).map((g) => g.close()));
  await provider?.close();
});

/** A stream that sends a chunk every 100 ms, for far longer than a cell lasts. */
function streamSlowly(res: ServerResponse): void {
  res.writeHead(200, { "content-type": "text/event-stream" });
  const [chunk] = chunks(1);
  const timer = setInterval(() => res.write(`data: ${JSON.stringify(chunk)}\n\n`), 100);
  res.once("close", () => clearInterval(timer));
}

type Protocol = "rest" | "grpc" | "grpc-web" | "connect";
type Ending = "reset" | "connection closed" | "deadline";

const UNARY = "/smarter.prompt.v1.PassthroughService/Passthrough";
const STREAM = "/smarter.prompt.v1.PassthroughService/PassthroughStream";

/** The request of a cell: path, headers and body bytes. */
function requestOf(protocol: Protocol, streaming: boolean, id: string, deadline: boolean) {
  const body = { model: id, messages: [], ...(streaming && protocol === "rest" ? { stream: true } : {}) };
  const envelope = (bytes: Uint8Array) => Buffer.concat([Buffer.from([0]), uint32(bytes.length), bytes]);
  const binary = () => toBinary(PassthroughRequestSchema, create(PassthroughRequestSchema, { providerName: "local", body }));
  switch (protocol) {
    case "rest":
      return { path: "/api/v1/prompts/passthrough/local/", headers: { "content-type": "application/json" }, body: Buffer.from(JSON.stringify(body)) };
    case "grpc":
    case "grpc-web":
      return {
        path: streaming ? STREAM : UNARY,
        headers: {
          "content-type": protocol === "grpc" ? "application/grpc" : "application/grpc-web+proto",
          ...(protocol === "grpc" ? { te: "trailers" } : {}),
          ...(deadline ? { "grpc-timeout": `${DEADLINE_MS}m` } : {}),
        },
        body: envelope(binary()),
      };
    case "connect": {
      const json = Buffer.from(JSON.stringify({ providerName: "local", body }));
      return {
        path: streaming ? STREAM : UNARY,
        headers: { "content-type": streaming ? "application/connect+json" : "application/json", ...(deadline ? { "connect-timeout-ms": String(DEADLINE_MS) } : {}) },
        body: streaming ? envelope(json) : json,
      };
    }
  }
}

function uint32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** Sends the request and, once the provider has it, ends the call as the cell says; resolves when the provider saw its request closed. */
async function runCell(url: string, protocol: Protocol, version: 1 | 2, streaming: boolean, ending: Ending, id: string): Promise<number> {
  const { path, headers, body } = requestOf(protocol, streaming, id, ending === "deadline");
  let cancel: () => void;
  if (version === 1) {
    const socket = net.connect(Number(new URL(url).port), "127.0.0.1");
    socket.on("error", () => undefined);
    socket.on("data", () => undefined);
    const head = Object.entries({ host: "127.0.0.1", "content-length": String(body.length), ...headers }).map(([k, v]) => `${k}: ${v}\r\n`).join("");
    socket.write(`POST ${path} HTTP/1.1\r\n${head}\r\n`);
    socket.write(body);
    cancel = ending === "reset" ? () => socket.resetAndDestroy() : () => socket.destroy();
  } else {
    const session = http2.connect(url);
    session.on("error", () => undefined);
    const stream = session.request({ ":method": "POST", ":path": path, ...headers });
    stream.on("error", () => undefined);
    stream.on("data", () => undefined);
    stream.end(body);
    cancel = ending === "reset" ? () => stream.close(http2.constants.NGHTTP2_CANCEL) : () => session.destroy();
  }
  const request = await waitForRequest(id);
  // A stream is cancelled once it is under way; a unary call while the provider is still thinking.
  if (streaming) await new Promise((resolve) => setTimeout(resolve, 150));
  const from = Date.now();
  if (ending !== "deadline") cancel();
  const closedAt = await Promise.race([request.closed, new Promise<number>((resolve) => setTimeout(() => resolve(Infinity), 3000))]);
  cancel();
  return closedAt - (ending === "deadline" ? request.receivedAt + DEADLINE_MS : from);
}

async function waitForRequest(id: string): Promise<RecordedRequest> {
  for (let waited = 0; waited < 3000; waited += 5) {
    const found = provider.requests.find((r) => (r.json as { model?: string } | undefined)?.model === id);
    if (found) return found;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error(`the provider never received ${id}`);
}

const cells: Array<{ protocol: Protocol; version: 1 | 2; streaming: boolean; ending: Ending }> = [];
for (const [protocol, versions] of [["rest", [1, 2]], ["grpc", [2]], ["grpc-web", [1, 2]], ["connect", [1, 2]]] as const) {
  for (const version of versions) {
    for (const streaming of [false, true]) {
      for (const ending of ["reset", "connection closed", "deadline"] as const) {
        if (protocol === "rest" && ending === "deadline") continue; // REST has no deadline header
        cells.push({ protocol, version, streaming, ending });
      }
    }
  }
}

describe.each(["on", "off"])("with the fast paths %s", (fastPaths) => {
  it.each(cells)("$protocol over HTTP/$version, streaming: $streaming, $ending: the provider's request is closed within 1 s", async ({ protocol, version, streaming, ending }) => {
    const id = `${fastPaths}-${protocol}-${version}-${streaming}-${ending}`;
    const elapsed = await runCell(gateways[fastPaths].url, protocol, version, streaming, ending, id);
    expect(elapsed).toBeLessThan(1000);
  });
});
