/**
 * What the gateway does whatever a provider does (SPEC sections 3 and 8): each fault on REST,
 * gRPC and Connect, with the documented error, in bounded time, and with the gateway's peak
 * memory (measured in a child process of its own) growing by less than ~100 MB under the
 * default limits. A huge body is generated piece by piece, and never held by the test either.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { completion, json, resetAfter, sse, chunks, startFakeProvider, type Behaviour, type FakeProvider } from "../support/fake-provider.js";
import { bytesWritten, drip, endlessLine, generated, gzipBomb, hugeCompletion, tinyEvents } from "../support/provider-faults.js";
import { spawnGateway, type ChildGateway } from "./support/child-gateway.js";
import { restStream, rpcStream, unary, UNARY_PROTOCOLS } from "./support/fault-calls.js";

const MiB = 1024 * 1024;
/** How much the gateway's peak resident memory may grow during one faulty call. */
const MEMORY_GROWTH = 100 * MiB;
/** And over the whole suite's calls, one after another (the heap and the allocator keep some). */
const SUITE_GROWTH = 2 * MEMORY_GROWTH;
const SECRET = "sk-fault-provider-secret-4b1d";
const JSON_TYPE = { "content-type": "application/json" };
const SSE_TYPE = { "content-type": "text/event-stream; charset=utf-8" };
const INVALID_UTF8 = Buffer.concat([Buffer.from('{"choices":[{"delta":{"content":"bad '), Buffer.from([0xff, 0xfe]), Buffer.from('"}}]}')]);

let provider: FakeProvider;
let elsewhere: FakeProvider;
let gateway: ChildGateway;
const messages: string[] = [];
/** The gateway's resident memory once started, and the highest peak seen in any call. */
let startRss = 0;
let highestPeak = 0;

beforeAll(async () => {
  [provider, elsewhere] = await Promise.all([startFakeProvider(), startFakeProvider()]);
  gateway = await spawnGateway(
    {
      upstream: { backoffBaseMs: 10 },
      providers: [
        { name: "faults", baseUrl: provider.url, apiKeyEnv: "FAULT_KEY", timeoutMs: 20_000 },
        { name: "slow", baseUrl: provider.url, apiKeyEnv: "FAULT_KEY", timeoutMs: 1500, retries: 0 },
      ],
    },
    { FAULT_KEY: SECRET },
  );
  startRss = gateway.rssBytes();
});

afterAll(async () => {
  const code = await gateway?.stop();
  await Promise.all([provider?.close(), elsewhere?.close()]);
  // No provider key in any error the callers saw, nor in any log line.
  for (const text of [...messages, ...(gateway?.stdout ?? []), ...(gateway?.stderr ?? [])]) expect(text).not.toContain(SECRET);
  expect(code).toBe(0);
  // Nor did the calls add up.
  expect(highestPeak - startRss).toBeLessThan(SUITE_GROWTH);
});

afterEach(() => {
  provider.clear();
  elsewhere.clear();
});

/** Runs one call, with its duration and the growth of the gateway's peak memory meanwhile. */
async function measured<T>(call: () => Promise<T>): Promise<{ result: T; ms: number; growth: number }> {
  gateway.resetPeak();
  const before = gateway.rssBytes();
  const started = Date.now();
  const result = await call();
  const peak = gateway.peakRssBytes();
  highestPeak = Math.max(highestPeak, peak);
  return { result, ms: Date.now() - started, growth: peak - before };
}

/** The provider's side of the last exchange, once it is over. */
async function lastExchange() {
  const request = provider.requests.at(-1)!;
  await request.done;
  return { request, written: bytesWritten(request) };
}

const redirect = () => json(302, {}, { location: `${elsewhere.url}/chat/completions` });

interface UnaryRow {
  name: string;
  providerName?: string;
  behaviour: () => Behaviour;
  code: string;
  restStatus: number;
  message: RegExp;
  maxMs: number;
  /** Most body bytes the provider may manage to write before the gateway stops reading. */
  maxWritten?: number;
  /** Requests per call (retries included); default 1. */
  requests?: number;
}

const unaryRows: UnaryRow[] = [
  {
    name: "a 500 MiB answer: fails at the bound, read no further",
    behaviour: () => generated(200, JSON_TYPE, () => hugeCompletion(500 * MiB)),
    code: "unavailable", restStatus: 502, message: /more than the 32 MiB allowed \(upstream\.maxAnswerBytes\)$/, maxMs: 5000, maxWritten: 64 * MiB,
  },
  {
    name: "a 500 MiB answer that says so in its content-length: fails on the headers",
    behaviour: () => generated(200, { ...JSON_TYPE, "content-length": 500 * MiB }, () => hugeCompletion(500 * MiB)),
    code: "unavailable", restStatus: 502, message: /more than the 32 MiB allowed \(upstream\.maxAnswerBytes\)$/, maxMs: 2000, maxWritten: 16 * MiB,
  },
  {
    name: "a 500 MiB error body: relayed truncated",
    behaviour: () => generated(500, JSON_TYPE, () => hugeCompletion(500 * MiB)),
    code: "unavailable", restStatus: 502, message: /failed \(HTTP 500\)/, maxMs: 2000, maxWritten: 16 * MiB,
  },
  {
    name: "a byte a second: bounded by the provider's timeout",
    providerName: "slow",
    behaviour: () => generated(200, JSON_TYPE, () => drip(Buffer.from(JSON.stringify(completion("m"))), 1000)),
    code: "deadline_exceeded", restStatus: 504, message: /did not answer within 1500 ms/, maxMs: 3000,
  },
  {
    name: "a reset midway: retried, then 502",
    behaviour: () => resetAfter(40),
    code: "unavailable", restStatus: 502, message: /could not be reached/, maxMs: 2000, requests: 3,
  },
  {
    name: "a close midway through a body with a content-length",
    behaviour: () => generated(200, { ...JSON_TYPE, "content-length": 1000 }, () => [Buffer.from('{"id":"x","choices":[')], "close"),
    code: "unavailable", restStatus: 502, message: /could not be reached/, maxMs: 2000, requests: 3,
  },
  {
    name: "invalid UTF-8: refused",
    behaviour: () => generated(200, JSON_TYPE, () => [INVALID_UTF8]),
    code: "unavailable", restStatus: 502, message: /not valid UTF-8/, maxMs: 2000,
  },
  {
    name: "a gzip bomb the gateway did not ask for: refused, not inflated",
    behaviour: () => generated(200, { ...JSON_TYPE, "content-encoding": "gzip" }, () => gzipBomb(1024 * MiB)),
    code: "unavailable", restStatus: 502, message: /content-encoding "gzip" the gateway did not ask for$/, maxMs: 2000, maxWritten: 16 * MiB,
  },
  {
    name: "a redirect: never followed",
    behaviour: redirect,
    code: "unavailable", restStatus: 502, message: /a redirect \(HTTP 302\) the gateway does not follow$/, maxMs: 2000,
  },
];

describe("a faulty provider answering Passthrough", () => {
  it.each(unaryRows)("$name", async (row) => {
    provider.setDefault(row.behaviour());
    for (const protocol of UNARY_PROTOCOLS) {
      const requestsBefore = provider.requests.length;
      const { result, ms, growth } = await measured(() => unary(protocol, gateway, row.providerName ?? "faults", { model: "m" }));
      messages.push(result.message ?? "");
      expect(result.code, protocol).toBe(row.code);
      expect(result.message, protocol).toMatch(row.message);
      if (protocol === "rest") expect(result.status).toBe(row.restStatus);
      expect(ms, protocol).toBeLessThan(row.maxMs);
      expect(growth, protocol).toBeLessThan(MEMORY_GROWTH);
      const { written } = await lastExchange();
      if (row.maxWritten !== undefined) expect(written, protocol).toBeLessThan(row.maxWritten);
      expect(provider.requests.length - requestsBefore, protocol).toBe(row.requests ?? 1);
    }
    expect(elsewhere.requests).toHaveLength(0);
  });

  it("asks the provider for no content coding", async () => {
    provider.reply(json(200, completion("m")));
    expect((await unary("rest", gateway, "faults", { model: "m" })).code).toBe("ok");
    expect(provider.requests[0].headers["accept-encoding"]).toBe("identity");
  });

  it("relays a truncated error body as the provider's error", async () => {
    provider.reply(generated(500, JSON_TYPE, () => hugeCompletion(500 * MiB)));
    const result = await unary("rest", gateway, "faults", { model: "m" });
    const upstream = (result.body as { error: { upstream: unknown } }).error.upstream;
    expect(typeof upstream).toBe("string");
    expect(upstream as string).toMatch(/^\{"id":"chatcmpl-huge".*aaaa…$/);
    expect((upstream as string).length).toBeLessThan(4096);
  });
});

interface StreamRow {
  name: string;
  providerName?: string;
  behaviour: () => Behaviour;
  /** Checks the REST answer. */
  rest: (answer: Awaited<ReturnType<typeof restStream>>) => void;
  /** The PassthroughStream outcome: its code, its message when it failed, the chunks before. */
  rpc: { code: string; message?: RegExp; chunks?: number; minChunks?: number; first?: unknown };
  maxMs: number;
  maxWritten?: number;
}

/** A REST stream that started, then ended with the SSE error event. */
function endedWithError(code: string, status: number, description: RegExp) {
  return (answer: Awaited<ReturnType<typeof restStream>>) => {
    expect(answer.status).toBe(200);
    const match = /event: error\ndata: (.*)\n\n$/.exec(answer.tail);
    expect(match, answer.tail.slice(-300)).not.toBeNull();
    const envelope = JSON.parse(match![1]) as { error: { code: string; status: number; description: string } };
    expect(envelope.error).toMatchObject({ code, status });
    expect(envelope.error.description).toMatch(description);
    messages.push(envelope.error.description);
  };
}

/** A REST stream refused before it started, with the error envelope. */
function refused(status: number, description: RegExp) {
  return (answer: Awaited<ReturnType<typeof restStream>>) => {
    expect(answer.status).toBe(status);
    const envelope = JSON.parse(answer.text) as { error: { code: string; description: string } };
    expect(envelope.error.code).toBe("unavailable");
    expect(envelope.error.description).toMatch(description);
    messages.push(envelope.error.description);
  };
}

const EVENT_BOUND = /SSE event larger than the 8 MiB allowed \(upstream\.maxEventBytes\)$/;
const ANSWER_BOUND = /more than the 32 MiB allowed \(upstream\.maxAnswerBytes\)$/;
const TWO_EVENTS = 'data: {"choices":[{"delta":{"content":"a"}}]}\n\ndata: {"cho';

const streamRows: StreamRow[] = [
  {
    name: "an SSE stream that never sends a newline (200 MiB): fails at the event bound",
    behaviour: () => generated(200, SSE_TYPE, () => endlessLine(200 * MiB)),
    rest: endedWithError("unavailable", 502, EVENT_BOUND),
    rpc: { code: "unavailable", message: EVENT_BOUND },
    maxMs: 5000, maxWritten: 48 * MiB,
  },
  {
    name: "a 500 MiB JSON answer to a stream request: fails at the answer bound",
    behaviour: () => generated(200, JSON_TYPE, () => hugeCompletion(500 * MiB)),
    rest: refused(502, ANSWER_BOUND),
    rpc: { code: "unavailable", message: ANSWER_BOUND },
    maxMs: 5000, maxWritten: 64 * MiB,
  },
  {
    name: "a byte a second: bounded by the provider's timeout",
    providerName: "slow",
    behaviour: () => generated(200, SSE_TYPE, () => drip(Buffer.from('data: {"choices":[]}\n\n'), 1000)),
    rest: endedWithError("deadline_exceeded", 504, /did not answer within 1500 ms/),
    rpc: { code: "deadline_exceeded", message: /did not answer within 1500 ms/ },
    maxMs: 3000,
  },
  {
    name: "a reset midway: the events before it, then the error",
    behaviour: () => sse(chunks(3), { errorAfter: 2 }),
    rest: endedWithError("unavailable", 502, /stream broke off/),
    rpc: { code: "unavailable", message: /stream broke off/, chunks: 2 },
    maxMs: 2000,
  },
  {
    name: "a close midway through an event: the events before it, then the error",
    behaviour: () => generated(200, SSE_TYPE, () => [Buffer.from(TWO_EVENTS)], "close"),
    rest: endedWithError("unavailable", 502, /stream broke off/),
    rpc: { code: "unavailable", message: /stream broke off/, chunks: 1 },
    maxMs: 2000,
  },
  {
    name: "invalid UTF-8 in an event: relayed as sent on REST, replaced on PassthroughStream",
    behaviour: () => generated(200, SSE_TYPE, () => [Buffer.concat([Buffer.from("data: "), INVALID_UTF8, Buffer.from("\n\ndata: [DONE]\n\n")])]),
    rest: (answer) => {
      expect(answer.status).toBe(200);
      expect(answer.head.equals(Buffer.concat([Buffer.from("data: "), INVALID_UTF8, Buffer.from("\n\ndata: [DONE]\n\n")]))).toBe(true);
    },
    rpc: { code: "ok", chunks: 1, first: { choices: [{ delta: { content: "bad \uFFFD\uFFFD" } }] } },
    maxMs: 2000,
  },
  {
    name: "a gzip bomb the gateway did not ask for: refused before the stream starts",
    behaviour: () => generated(200, { ...SSE_TYPE, "content-encoding": "gzip" }, () => gzipBomb(1024 * MiB)),
    rest: refused(502, /content-encoding "gzip" the gateway did not ask for$/),
    rpc: { code: "unavailable", message: /content-encoding "gzip" the gateway did not ask for$/ },
    maxMs: 2000, maxWritten: 16 * MiB,
  },
  {
    name: "a redirect: never followed",
    behaviour: redirect,
    rest: refused(502, /redirect \(HTTP 302\)/),
    rpc: { code: "unavailable", message: /redirect \(HTTP 302\)/ },
    maxMs: 2000,
  },
  {
    name: "tiny events without end: relayed, not accumulated, until the timeout",
    providerName: "slow",
    behaviour: () => generated(200, SSE_TYPE, () => tinyEvents(10_000)),
    rest: (answer) => {
      expect(answer.bytes).toBeGreaterThan(256 * 1024);
      endedWithError("deadline_exceeded", 504, /did not answer within 1500 ms/)(answer);
    },
    rpc: { code: "deadline_exceeded", message: /did not answer within 1500 ms/, minChunks: 1000 },
    maxMs: 3500,
  },
];

describe("a faulty provider answering a stream", () => {
  it.each(streamRows)("$name", async (row) => {
    provider.setDefault(row.behaviour());
    const name = row.providerName ?? "faults";
    const rest = await measured(() => restStream(gateway, name, { model: "m" }));
    row.rest(rest.result);
    expect(rest.ms, "rest").toBeLessThan(row.maxMs);
    expect(rest.growth, "rest").toBeLessThan(MEMORY_GROWTH);
    if (row.maxWritten !== undefined) expect((await lastExchange()).written, "rest").toBeLessThan(row.maxWritten);
    for (const protocol of ["grpc", "connect"] as const) {
      const { result, ms, growth } = await measured(() => rpcStream(protocol, gateway, name, { model: "m" }));
      messages.push(result.message ?? "");
      expect(result.code, protocol).toBe(row.rpc.code);
      if (row.rpc.message) expect(result.message, protocol).toMatch(row.rpc.message);
      if (row.rpc.chunks !== undefined) expect(result.count, protocol).toBe(row.rpc.chunks);
      if (row.rpc.minChunks !== undefined) expect(result.count, protocol).toBeGreaterThan(row.rpc.minChunks);
      if (row.rpc.first !== undefined) expect(result.first[0], protocol).toEqual(row.rpc.first);
      expect(ms, protocol).toBeLessThan(row.maxMs);
      expect(growth, protocol).toBeLessThan(MEMORY_GROWTH);
      if (row.maxWritten !== undefined) expect((await lastExchange()).written, protocol).toBeLessThan(row.maxWritten);
    }
    expect(elsewhere.requests).toHaveLength(0);
  });
});
