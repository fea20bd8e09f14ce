import * as http2 from "node:http2";
import * as net from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CallRecord } from "../../src/call/record.js";
import { startFakeProvider, type FakeProvider } from "../support/fake-provider.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

// A header check runs on every door before any byte of the body is read: with one that
// refuses every call, a request that announces a 9 MiB body is answered while the test has
// sent its headers only; the body would follow only after the answer.
let provider: FakeProvider;
let gateway: TestGateway;
const ended: CallRecord[] = [];
const checked: string[] = [];
const NINE_MIB = 9 * 1024 * 1024;

beforeAll(async () => {
  provider = await startFakeProvider();
  gateway = await startTestGateway(
    { providers: [{ name: "local", baseUrl: provider.url }] },
    {},
    {
      headerChecks: [
        (call) => {
          checked.push(call.procedure);
          throw new ConnectError("refused by the test's header check", Code.Unauthenticated);
        },
      ],
      onCallEnd: [(call) => void ended.push(call)],
    },
  );
});
afterAll(async () => {
  await gateway?.close();
  await provider?.close();
});

const UNARY = "/smarter.prompt.v1.PassthroughService/Passthrough";
const STREAM = "/smarter.prompt.v1.PassthroughService/PassthroughStream";

/** HTTP/1.1 headers announcing a 9 MiB body, and no body: resolves with the raw answer. */
function http1HeadersOnly(path: string, contentType: string): Promise<string> {
  const { port } = new URL(gateway.url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), "127.0.0.1");
    let answer = "";
    const timer = setTimeout(() => reject(new Error(`no answer before the body; got ${JSON.stringify(answer)}`)), 3000);
    socket.on("data", (chunk) => {
      answer += chunk.toString("latin1");
      const end = answer.indexOf("\r\n\r\n");
      const length = /content-length: (\d+)/i.exec(answer);
      if (end >= 0 && length && answer.length >= end + 4 + Number(length[1])) {
        clearTimeout(timer);
        socket.destroy();
        resolve(answer);
      }
    });
    socket.on("error", reject);
    socket.write(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${contentType}\r\nContent-Length: ${NINE_MIB}\r\n\r\n`);
  });
}

/** HTTP/2 headers of a gRPC call whose stream stays open for a 9 MiB message that is never sent. */
function http2HeadersOnly(path: string, contentType: string): Promise<{ headers: http2.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(gateway.url);
    const stream = session.request({ ":method": "POST", ":path": path, "content-type": contentType, te: "trailers", "content-length": String(NINE_MIB) }, { endStream: false });
    let headers: http2.IncomingHttpHeaders = {};
    let body = "";
    const timer = setTimeout(() => reject(new Error("no answer before the body")), 3000);
    stream.on("response", (h) => (headers = h));
    stream.on("trailers", (t) => (headers = { ...headers, ...t }));
    stream.on("data", (chunk: Buffer) => (body += chunk.toString("latin1")));
    const done = () => {
      clearTimeout(timer);
      session.destroy();
      resolve({ headers, body });
    };
    stream.on("end", done);
    stream.on("close", done);
    stream.on("error", reject);
  });
}

describe("a header check that refuses", () => {
  it.each([
    { name: "REST", path: "/api/v1/prompts/passthrough/local/", type: "application/json", status: 401, code: "unauthenticated" },
    { name: "Connect unary", path: UNARY, type: "application/json", status: 401, code: "unauthenticated" },
  ])("answers $name over HTTP/1.1 before the body is sent", async ({ path, type, status, code }) => {
    ended.length = 0;
    checked.length = 0;
    const answer = await http1HeadersOnly(path, type);
    expect(answer).toMatch(new RegExp(`^HTTP/1.1 ${status} `));
    const body = JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4)) as { code?: string; error?: { code: string } };
    expect(body.error?.code ?? body.code).toBe(code);
    expect(answer).toMatch(/x-journal-key: [0-9a-f]{64}/i);
    await until(() => ended.length === 1);
    expect(ended[0].outcome?.code).toBe(Code.Unauthenticated);
    expect(checked).toEqual([ended[0].procedure]);
    expect(provider.requests).toHaveLength(0);
  });

  it.each([
    { name: "gRPC unary", path: UNARY, type: "application/grpc" },
    { name: "gRPC streaming", path: STREAM, type: "application/grpc" },
    { name: "gRPC-Web unary", path: UNARY, type: "application/grpc-web+proto" },
    { name: "Connect streaming", path: STREAM, type: "application/connect+json" },
  ])("answers $name over HTTP/2 before the message is sent", async ({ path, type }) => {
    ended.length = 0;
    checked.length = 0;
    const { headers, body } = await http2HeadersOnly(path, type);
    expect(headers[":status"]).toBe(200);
    if (type === "application/connect+json") expect(body).toContain('"code":"unauthenticated"');
    else expect(headers["grpc-status"] ?? /grpc-status: ?(\d+)/.exec(body)?.[1]).toBe(String(Code.Unauthenticated));
    await until(() => ended.length === 1);
    expect(ended[0]).toMatchObject({ procedure: path, outcome: { code: Code.Unauthenticated } });
    expect(checked).toEqual([path]);
    expect(provider.requests).toHaveLength(0);
  });

});

async function until(condition: () => boolean): Promise<void> {
  for (let waited = 0; !condition() && waited < 3000; waited += 10) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(condition()).toBe(true);
}
