// The soak's load mix: every kind of call, its share of the rate, how many may be in flight, and
// the outcomes SPEC sections 3 and 8 document for it. Anything else is an undocumented error.
import { create, toBinary, type JsonObject } from "@bufbuild/protobuf";
import { PassthroughRequestSchema, PassthroughService } from "../../src/gen/smarter/prompt/v1/passthrough_pb.js";
import { Readable } from "node:stream";
import { chatBody } from "./settings.js";
import { grpcStream, grpcUnary, httpUnary, idleSocket, restStream, type Observation, type SoakClients } from "./soak-calls.js";

export interface CallKind {
  name: string;
  protocol: "REST" | "gRPC" | "Connect" | "TCP";
  /** What the call does, for the report. */
  what: string;
  /** Calls per second at the default total rate (the mix is scaled to BENCH_SOAK_RATE). */
  perSecond: number;
  /** At most this many in flight; a call due while the kind is at its cap is not sent (counted as shed). */
  maxInFlight: number;
  /** Outcome labels SPEC documents for this call. */
  expected: string[];
  /**
   * The call ends before the provider answers (a hang-up, a cancel, a deadline): it asks for the
   * provider's "delay" fault, so that the provider's counters show whether the gateway aborted it.
   */
  abortsUpstream?: boolean;
  run(clients: SoakClients): Promise<Observation>;
}

/** Providers the soak's gateway knows: the bench provider, and one whose port is closed. */
export const PROVIDER = "bench";
export const DOWN_PROVIDER = "benchdown";
const UNKNOWN_PROVIDER = "nosuchprovider";
/** Bodies just over the default 8 MiB limit. */
export const OVERSIZE_BYTES = 9 * 1024 * 1024;
/** Deadlines the soak sets on calls the provider delays (its "delay" fault waits longer). */
const SHORT_DEADLINE_MS = 50;

const restPath = (provider: string): string => `/api/v1/prompts/passthrough/${provider}/`;
const connectPath = `/${PassthroughService.typeName}/Passthrough`;
const grpcUnaryPath = `/${PassthroughService.typeName}/Passthrough`;
const grpcStreamPath = `/${PassthroughService.typeName}/PassthroughStream`;

/** The chat body, asking the bench provider for a fault (provider.ts --faults) and maybe a stream. */
const withFault = (fault?: string, stream?: boolean): Record<string, unknown> => ({ ...chatBody, ...(fault ? { bench_fault: fault } : {}), ...(stream ? { stream: true } : {}) });
const json = (fault?: string, stream?: boolean): string => JSON.stringify(withFault(fault, stream));
const connectJson = (provider: string, fault?: string, stream?: boolean): string => JSON.stringify({ providerName: provider, body: withFault(fault, stream) });
const grpcRequest = (provider: string, body: Record<string, unknown>): Buffer =>
  Buffer.from(toBinary(PassthroughRequestSchema, create(PassthroughRequestSchema, { providerName: provider, body: body as JsonObject })));

const oversizeJson = Buffer.from(JSON.stringify({ ...chatBody, messages: [{ role: "user", content: "a".repeat(OVERSIZE_BYTES) }] }));
/** The same bytes without a content-length (chunked), 64 KiB at a time. */
function oversizeChunks(): Readable {
  return Readable.from(
    (function* () {
      for (let offset = 0; offset < oversizeJson.length; offset += 65_536) yield oversizeJson.subarray(offset, offset + 65_536);
    })(),
  );
}

const restOk = (body: Record<string, unknown>): string | undefined =>
  body.api === "smarter.sh/v1" && Array.isArray(body.choices) ? undefined : "no `api` or `choices`";
const connectOk = (body: Record<string, unknown>): string | undefined =>
  Array.isArray((body.body as { choices?: unknown } | undefined)?.choices) ? undefined : "no `body.choices`";

/** Built once per load process: the serialized requests are reused by every call. */
export function soakMix(): CallKind[] {
  const grpcOk = grpcRequest(PROVIDER, withFault());
  const grpcStreamOk = grpcRequest(PROVIDER, withFault(undefined, true));
  const grpcOversize = grpcRequest(PROVIDER, { ...chatBody, messages: [{ role: "user", content: "a".repeat(OVERSIZE_BYTES) }] });
  const rest = (path: string, body: string | Buffer | (() => Readable), extra: { hangUpAfterMs?: number; expectHeader?: string } = {}) =>
    (clients: SoakClients) => httpUnary(clients, { path, body, protocol: "rest", checkOk: restOk, ...extra });
  const connect = (body: string, headers?: Record<string, string>) => (clients: SoakClients) =>
    httpUnary(clients, { path: connectPath, body, headers: { "connect-protocol-version": "1", ...headers }, protocol: "connect", checkOk: connectOk });
  const unary = (request: Buffer, deadlineMs?: number) => (clients: SoakClients) => grpcUnary(clients, grpcUnaryPath, request, deadlineMs);
  const stream = (request: Buffer, cancelAfterFirst = false) => (clients: SoakClients) => grpcStream(clients, grpcStreamPath, request, cancelAfterFirst);

  return [
    { name: "rest-unary", protocol: "REST", what: "chat completion", perSecond: 70, maxInFlight: 32, expected: ["200"], run: rest(restPath(PROVIDER), json()) },
    { name: "rest-sse", protocol: "REST", what: '`"stream": true`, read to `data: [DONE]`', perSecond: 20, maxInFlight: 16, expected: ["200 [DONE]"], run: (clients) => restStream(clients, restPath(PROVIDER), json(undefined, true), false) },
    { name: "rest-sse-hangup", protocol: "REST", what: "slow stream, the caller hangs up after the first event", perSecond: 5, maxInFlight: 8, expected: ["hung up after the first event"], abortsUpstream: true, run: (clients) => restStream(clients, restPath(PROVIDER), json("delay", true), true) },
    { name: "rest-unary-hangup", protocol: "REST", what: "the provider delays; the caller hangs up after 50 ms", perSecond: 4, maxInFlight: 8, expected: ["hung up"], abortsUpstream: true, run: rest(restPath(PROVIDER), json("delay"), { hangUpAfterMs: SHORT_DEADLINE_MS }) },
    { name: "rest-invalid-json", protocol: "REST", what: "a body that is not JSON (cut short)", perSecond: 4, maxInFlight: 8, expected: ["400 invalid_argument"], run: rest(restPath(PROVIDER), json().slice(0, 40)) },
    { name: "rest-not-object", protocol: "REST", what: "a JSON array as the body", perSecond: 2, maxInFlight: 8, expected: ["400 invalid_argument"], run: rest(restPath(PROVIDER), "[1,2,3]") },
    { name: "rest-unknown-provider", protocol: "REST", what: "a provider that is not configured", perSecond: 4, maxInFlight: 8, expected: ["404 not_found"], run: rest(restPath(UNKNOWN_PROVIDER), json()) },
    { name: "rest-provider-down", protocol: "REST", what: "a provider whose port is closed (retried, then failed)", perSecond: 2, maxInFlight: 8, expected: ["502 unavailable"], run: rest(restPath(DOWN_PROVIDER), json()) },
    { name: "rest-upstream-500", protocol: "REST", what: "the provider answers 500", perSecond: 3, maxInFlight: 8, expected: ["502 unavailable"], run: rest(restPath(PROVIDER), json("500")) },
    { name: "rest-upstream-400", protocol: "REST", what: "the provider answers 400", perSecond: 2, maxInFlight: 8, expected: ["400 invalid_argument"], run: rest(restPath(PROVIDER), json("400")) },
    { name: "rest-upstream-429", protocol: "REST", what: "the provider answers 429, Retry-After past the cap", perSecond: 2, maxInFlight: 8, expected: ["429 resource_exhausted"], run: rest(restPath(PROVIDER), json("429"), { expectHeader: "retry-after" }) },
    { name: "rest-upstream-reset", protocol: "REST", what: "the provider resets the connection (retried, then failed)", perSecond: 2, maxInFlight: 8, expected: ["502 unavailable"], run: rest(restPath(PROVIDER), json("reset")) },
    { name: "rest-sse-break", protocol: "REST", what: "stream; the provider resets after 3 events", perSecond: 2, maxInFlight: 8, expected: ["200 event: error unavailable"], run: (clients) => restStream(clients, restPath(PROVIDER), json("break", true), false) },
    { name: "rest-oversize", protocol: "REST", what: "a 9 MiB body with content-length", perSecond: 0.1, maxInFlight: 1, expected: ["413 resource_exhausted"], run: rest(restPath(PROVIDER), oversizeJson) },
    { name: "rest-oversize-chunked", protocol: "REST", what: "a 9 MiB body, chunked", perSecond: 0.1, maxInFlight: 1, expected: ["413 resource_exhausted"], run: rest(restPath(PROVIDER), oversizeChunks) },
    { name: "grpc-unary", protocol: "gRPC", what: "Passthrough", perSecond: 50, maxInFlight: 32, expected: ["OK"], run: unary(grpcOk) },
    { name: "grpc-stream", protocol: "gRPC", what: "PassthroughStream, read to the end", perSecond: 15, maxInFlight: 16, expected: ["OK"], run: stream(grpcStreamOk) },
    { name: "grpc-stream-cancel", protocol: "gRPC", what: "slow PassthroughStream, cancelled after the first message", perSecond: 4, maxInFlight: 8, expected: ["CANCELLED"], abortsUpstream: true, run: stream(grpcRequest(PROVIDER, withFault("delay", true)), true) },
    { name: "grpc-deadline", protocol: "gRPC", what: "the provider delays; deadline 50 ms", perSecond: 3, maxInFlight: 8, expected: ["DEADLINE_EXCEEDED"], abortsUpstream: true, run: unary(grpcRequest(PROVIDER, withFault("delay")), SHORT_DEADLINE_MS) },
    { name: "grpc-unknown-provider", protocol: "gRPC", what: "a provider that is not configured", perSecond: 3, maxInFlight: 8, expected: ["NOT_FOUND"], run: unary(grpcRequest(UNKNOWN_PROVIDER, withFault())) },
    { name: "grpc-provider-down", protocol: "gRPC", what: "a provider whose port is closed", perSecond: 2, maxInFlight: 8, expected: ["UNAVAILABLE"], run: unary(grpcRequest(DOWN_PROVIDER, withFault())) },
    { name: "grpc-stream-break", protocol: "gRPC", what: "PassthroughStream; the provider resets after 3 events", perSecond: 2, maxInFlight: 8, expected: ["UNAVAILABLE"], run: stream(grpcRequest(PROVIDER, withFault("break"))) },
    { name: "grpc-stream-flag", protocol: "gRPC", what: 'unary Passthrough with `"stream": true`', perSecond: 2, maxInFlight: 8, expected: ["INVALID_ARGUMENT"], run: unary(grpcRequest(PROVIDER, withFault(undefined, true))) },
    { name: "grpc-oversize", protocol: "gRPC", what: "a 9 MiB request message", perSecond: 0.1, maxInFlight: 1, expected: ["RESOURCE_EXHAUSTED"], run: unary(grpcOversize) },
    { name: "connect-unary", protocol: "Connect", what: "JSON Passthrough", perSecond: 40, maxInFlight: 32, expected: ["200"], run: connect(connectJson(PROVIDER)) },
    { name: "connect-invalid-json", protocol: "Connect", what: "a request that is not JSON (cut short)", perSecond: 3, maxInFlight: 8, expected: ["400 invalid_argument"], run: connect(connectJson(PROVIDER).slice(0, 40)) },
    { name: "connect-unknown-provider", protocol: "Connect", what: "a provider that is not configured", perSecond: 2, maxInFlight: 8, expected: ["404 not_found"], run: connect(connectJson(UNKNOWN_PROVIDER)) },
    { name: "connect-deadline", protocol: "Connect", what: "the provider delays; `connect-timeout-ms: 50`", perSecond: 2, maxInFlight: 8, expected: ["504 deadline_exceeded"], abortsUpstream: true, run: connect(connectJson(PROVIDER, "delay"), { "connect-timeout-ms": String(SHORT_DEADLINE_MS) }) },
    { name: "idle-socket", protocol: "TCP", what: "connects, sends nothing for 1–3 s, closes", perSecond: 2, maxInFlight: 8, expected: ["idle, closed by us", "closed by the gateway"], run: (clients) => idleSocket(clients, 1000 + Math.random() * 2000) },
  ];
}
