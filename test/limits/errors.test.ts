import { Code } from "@connectrpc/connect";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CallRecord } from "../../src/call/record.js";
import { rateLimitedError } from "../../src/limits/errors.js";
import { createMemoryRateLimiter } from "../../src/limits/memory.js";
import { retryAfterSeconds } from "../../src/limits/rate-limiter.js";
import { errorEnvelope } from "../../src/rest/errors.js";
import { httpStatusOf } from "../../src/transcoding/http-status.js";
import * as grpc from "@grpc/grpc-js";
import { PROTOCOLS, createGrpcJsClient, createProtocolClient, request } from "../support/clients.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

describe("the rate-limited error", () => {
  it.each([
    ["requestsPerMinute", 12_000, "12", "requests-per-minute"],
    ["tokensPerMinute", 30_060, "31", "tokens-per-minute"],
    ["requestsPerMinute", 1, "1", "requests-per-minute"],
  ] as const)("is RESOURCE_EXHAUSTED / 429 with Retry-After in whole seconds, rounded up (%s, %i ms)", (limit, retryAfterMs, header, words) => {
    const error = rateLimitedError({ allowed: false, limit, retryAfterMs });
    expect(error.code).toBe(Code.ResourceExhausted);
    expect(httpStatusOf(error)).toBe(429);
    expect(error.metadata.get("retry-after")).toBe(header);
    expect(error.rawMessage).toBe(`this key is over its ${words} limit (retry after ${header} s)`);
    expect(errorEnvelope(error, "k")).toMatchObject({ error: { errorClass: "ResourceExhausted", status: 429, code: "resource_exhausted" } });
  });

  it("rounds the header up, so that a client waiting that long is admitted", () => {
    expect(retryAfterSeconds({ allowed: false, limit: "requestsPerMinute", retryAfterMs: 1001 })).toBe(2);
    expect(retryAfterSeconds({ allowed: false, limit: "requestsPerMinute", retryAfterMs: 1000 })).toBe(1);
  });
});

/**
 * At the call boundary, on every protocol: a header check (where authentication will call
 * `admit`) refuses with the helper's error, and the gateway relays it as 429 with Retry-After.
 * The gateway itself is not wired to the limiter; this test composes the two.
 */
describe("a refusal at the call boundary", () => {
  let gateway: TestGateway;
  const limiter = createMemoryRateLimiter();
  const admitOnePerMinute = async (call: CallRecord) => {
    const admission = await limiter.admit(`test-${call.protocol}-${call.requestHeader.get("x-test-client") ?? "shared"}`, { requestsPerMinute: 1 });
    if (!admission.allowed) throw rateLimitedError(admission);
  };

  beforeAll(async () => {
    gateway = await startTestGateway({}, {}, { headerChecks: [admitOnePerMinute] });
  });
  afterAll(async () => {
    await gateway?.close();
    await limiter.close();
  });

  it.each(PROTOCOLS)("is RESOURCE_EXHAUSTED / 429 with retry-after over %s", async (protocol) => {
    const client = createProtocolClient(protocol, gateway.url);
    try {
      const first = await client.unary("nowhere", { model: "m", messages: [] });
      expect(first.code).toBe("not_found"); // admitted: it went on to resolve the provider
      const second = await client.unary("nowhere", { model: "m", messages: [] });
      expect(second).toMatchObject({ ok: false, code: "resource_exhausted" });
      // The same words on every protocol, grpc-js's decoding of grpc-message included.
      expect(second.message).toBe("this key is over its requests-per-minute limit (retry after 60 s)");
      if (protocol === "rest" || protocol === "connect") expect(second.status).toBe(429);
      // gRPC's shared client reads no trailers: the next test reads them.
      if (protocol !== "grpc") expect(second.headers["retry-after"]).toBe("60");
    } finally {
      client.close();
    }
  });

  it("carries retry-after in the gRPC trailers", async () => {
    const client = createGrpcJsClient(gateway.url);
    const metadata = new grpc.Metadata();
    metadata.set("x-test-client", "trailers"); // a key of its own
    const call = () =>
      new Promise<grpc.ServiceError | null>((resolve) => client.passthrough(request("nowhere", {}), metadata, {}, (error) => resolve(error)));
    try {
      expect((await call())?.code).toBe(grpc.status.NOT_FOUND);
      const refused = await call();
      expect(refused?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(refused?.metadata.get("retry-after")).toEqual(["60"]);
    } finally {
      client.close();
    }
  });
});
