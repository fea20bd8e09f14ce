import * as http2 from "node:http2";
import { gunzipSync, gzipSync } from "node:zlib";
import { create, toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { CallRecord } from "../../src/call/record.js";
import { HealthCheckRequestSchema } from "../../src/gen/grpc/health/v1/health_pb.js";
import { PassthroughRequestSchema } from "../../src/gen/smarter/prompt/v1/passthrough_pb.js";
import { completion, delay, errorBody, json, startFakeProvider, type Behaviour, type FakeProvider } from "../support/fake-provider.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

// The unary fast paths (src/server/fast-paths/) re-implement what connect-node does. One
// table of calls, written once, is sent to a gateway with the fast paths on and to one with
// them off, for gRPC and for Connect alike (as Hono's runTest({ newRouter }) serves every
// router), and every answer is compared: status, headers, trailers and body bytes, with the
// journal key (random per call) masked. Each call's record says which door served it.
let provider: FakeProvider;
let fast: TestGateway;
let reference: TestGateway;
const doors: string[] = [];
const READ_MAX_BYTES = 16 * 1024;

/** Adds a response header and a trailer to every call, to show both are carried alike. */
const tagging: Interceptor = (next) => async (req) => {
  const res = await next(req);
  res.header.set("x-test", "header");
  res.trailer.set("x-test-trailer", "trailer");
  return res;
};

/** Refuses a call that asks for it, with details and binary metadata, before its body is read. */
function refuseOnRequest(call: CallRecord): void {
  if (call.requestHeader.get("x-test-refuse") === null) return;
  const error = new ConnectError("refused with details", Code.PermissionDenied, { "x-test-bin": "AAEC/w==" });
  error.details.push({ desc: HealthCheckRequestSchema, value: { service: "detail" } });
  throw error;
}

beforeAll(async () => {
  provider = await startFakeProvider();
  const config = (fastPaths: boolean) => ({ providers: [{ name: "local", baseUrl: provider.url, retries: 0 }], server: { fastPaths, maxBodyBytes: READ_MAX_BYTES } });
  const calls = { interceptors: [tagging], headerChecks: [refuseOnRequest], onCallEnd: [(call: CallRecord) => void doors.push(call.door)] };
  fast = await startTestGateway(config(true), {}, calls);
  reference = await startTestGateway(config(false), {}, calls);
});
afterAll(async () => {
  await fast?.close();
  await reference?.close();
  await provider?.close();
});
afterEach(() => {
  provider.clear();
  doors.length = 0;
});

const PATH = "/smarter.prompt.v1.PassthroughService/Passthrough";
const KEY = /[0-9a-f]{64}/g;

/** One call in protocol-neutral terms; each protocol's sender puts it on the wire its way. */
interface Case {
  name: string;
  body?: unknown;
  providerName?: string;
  reply?: () => Behaviour;
  acceptGzip?: boolean;
  gzipRequest?: boolean;
  /** The deadline header's raw value, per protocol. */
  timeout?: { grpc: string; connect: string };
  headers?: Record<string, string>;
  /** Bytes that decode as no PassthroughRequest (binary), or text that is no JSON (Connect). */
  undecodable?: boolean;
  /** The caller's outcome, to be sure the case tests what it names; per protocol where they differ. */
  code: Code | 0 | Record<Subject["protocol"], Code>;
  providerCalled: boolean;
}

const chat = { model: "m", messages: [{ role: "user", content: "hi" }] };
const cases: Case[] = [
  { name: "a successful call", reply: () => json(200, completion("m")), code: 0, providerCalled: true },
  { name: "an answer of 1 KiB or more to a client that accepts gzip", reply: () => json(200, completion("m", "x".repeat(3000))), acceptGzip: true, code: 0, providerCalled: true },
  { name: "a gzip-compressed request", reply: () => json(200, completion("m")), gzipRequest: true, code: 0, providerCalled: true },
  { name: "an upstream error with Retry-After", reply: () => json(429, errorBody("slow down"), { "retry-after": "30" }), code: Code.ResourceExhausted, providerCalled: true },
  { name: "an unknown provider", providerName: "nope", code: Code.NotFound, providerCalled: false },
  { name: '"stream": true on the unary method', body: { model: "m", stream: true }, code: Code.InvalidArgument, providerCalled: false },
  { name: "a message over readMaxBytes", body: { model: "m", padding: "x".repeat(READ_MAX_BYTES) }, code: Code.ResourceExhausted, providerCalled: false },
  // gRPC answers a message it cannot parse INTERNAL, as gRPC's status-code table says; Connect JSON INVALID_ARGUMENT.
  { name: "a message that does not decode", undecodable: true, code: { grpc: Code.Internal, connect: Code.InvalidArgument }, providerCalled: false },
  { name: "an unreadable deadline header", timeout: { grpc: "soon", connect: "soon" }, code: Code.InvalidArgument, providerCalled: false },
  { name: "a deadline that passes", reply: () => delay(1000, json(200, completion("m"))), timeout: { grpc: "100m", connect: "100" }, code: Code.DeadlineExceeded, providerCalled: true },
  { name: "a deadline past a timer's reach (99999999H)", reply: () => json(200, completion("m")), timeout: { grpc: "99999999H", connect: "9999999999" }, code: 0, providerCalled: true },
  { name: "a refusal with error details and -bin metadata", headers: { "x-test-refuse": "1" }, code: Code.PermissionDenied, providerCalled: false },
];

interface WireAnswer {
  status: number;
  headers: Record<string, string>;
  trailers: Record<string, string>;
  /** Decompressed when it was compressed, the journal key masked. */
  body: string;
  /** The caller's outcome as the wire says it. */
  code: Code | 0;
}

interface Subject {
  protocol: "grpc" | "connect";
  send(url: string, c: Case): Promise<WireAnswer>;
}

const grpc: Subject = {
  protocol: "grpc",
  send(url, c) {
    const message = c.undecodable ? Buffer.from([0x17, 0xff]) : Buffer.from(toBinary(PassthroughRequestSchema, create(PassthroughRequestSchema, { providerName: c.providerName ?? "local", body: (c.body ?? chat) as never })));
    const payload = c.gzipRequest ? gzipSync(message) : message;
    const envelope = Buffer.concat([Buffer.from([c.gzipRequest ? 1 : 0]), uint32(payload.length), payload]);
    const headers: http2.OutgoingHttpHeaders = { ":method": "POST", ":path": PATH, "content-type": "application/grpc", te: "trailers", "grpc-accept-encoding": c.acceptGzip ? "gzip" : "identity", ...c.headers };
    if (c.gzipRequest) headers["grpc-encoding"] = "gzip";
    if (c.timeout) headers["grpc-timeout"] = c.timeout.grpc;
    return new Promise((resolve, reject) => {
      const session = http2.connect(url);
      const stream = session.request(headers);
      let response: http2.IncomingHttpHeaders = {};
      let trailers: http2.IncomingHttpHeaders = {};
      const data: Buffer[] = [];
      stream.on("response", (h) => (response = h));
      stream.on("trailers", (t) => (trailers = t));
      stream.on("data", (chunk: Buffer) => data.push(chunk));
      stream.on("error", reject);
      stream.on("end", () => {
        session.close();
        const bytes = Buffer.concat(data);
        const compressed = bytes.length > 0 && bytes[0] === 1;
        const body = bytes.length === 0 ? "" : `flags=${bytes[0]} ` + (compressed ? gunzipSync(bytes.subarray(5)) : bytes.subarray(5)).toString("latin1");
        const status = trailers["grpc-status"] ?? response["grpc-status"];
        resolve({ status: Number(response[":status"]), headers: kept(response), trailers: kept(trailers), body: body.replace(KEY, "<key>"), code: Number(status) as Code });
      });
      stream.end(envelope);
    });
  },
};

const connect: Subject = {
  protocol: "connect",
  async send(url, c) {
    const text = c.undecodable ? "{not json" : JSON.stringify({ providerName: c.providerName ?? "local", body: c.body ?? chat });
    const headers: Record<string, string> = { "content-type": "application/json", ...c.headers };
    if (c.acceptGzip) headers["accept-encoding"] = "gzip";
    else headers["accept-encoding"] = "identity";
    if (c.gzipRequest) headers["content-encoding"] = "gzip";
    if (c.timeout) headers["connect-timeout-ms"] = c.timeout.connect;
    const response = await fetch(url + PATH, { method: "POST", headers, body: c.gzipRequest ? gzipSync(text) : text });
    // fetch decompresses on its own; the header says whether the answer came compressed.
    const body = (await response.text()).replace(KEY, "<key>");
    const all = kept(Object.fromEntries(response.headers));
    const trailers = Object.fromEntries(Object.entries(all).filter(([name]) => name.startsWith("trailer-")));
    const code = response.ok ? 0 : (Object.entries(Code).find(([, value]) => value === codeFromName((JSON.parse(body) as { code: string }).code))?.[1] as Code);
    return { status: response.status, headers: all, trailers, body, code };
  },
};

/** Response headers that say something of the call; the journal key is masked (it is checked apart). */
function kept(headers: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (["date", "connection", "keep-alive", ":status"].includes(name)) continue;
    // A gzip stream's length differs with the journal key inside; the decompressed bodies are compared.
    if (name === "content-length" && headers["content-encoding"] === "gzip") continue;
    out[name] = String(value).replace(KEY, "<key>");
  }
  return out;
}

function codeFromName(name: string): Code {
  const entry = Object.entries(Code).find(([key]) => key.replace(/[A-Z]/g, (c, i) => (i ? "_" : "") + c.toLowerCase()) === name);
  return entry?.[1] as Code;
}

function uint32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** The shared equivalence test, run for each protocol that has a fast path. */
function runFastPathEquivalence(subject: Subject) {
  describe(`${subject.protocol} unary: the fast path answers exactly as connect-node`, () => {
    it.each(cases)("$name", async (c) => {
      if (c.reply) provider.reply(c.reply(), c.reply());
      const onFast = await subject.send(fast.url, c);
      const onReference = await subject.send(reference.url, c);
      expect(onFast.code).toBe(typeof c.code === "object" ? c.code[subject.protocol] : c.code);
      expect(onFast).toEqual(onReference);
      expect(onFast.headers["x-journal-key"]).toBe("<key>");
      expect(provider.requests.length).toBe(c.providerCalled ? 2 : 0);
      // Which door served each: the record says so, once per call.
      for (let waited = 0; doors.length < 2 && waited < 2000; waited += 10) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(doors).toEqual(["fast-path", "connect-node"]);
    });
  });
}

runFastPathEquivalence(grpc);
runFastPathEquivalence(connect);
