import * as grpc from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createGrpcJsClient, request } from "../support/clients.js";
import { completion, errorBody, json, startFakeProvider, type FakeProvider } from "../support/fake-provider.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";
import { NO_CACHE } from "../support/no-cache.js";

// Unary gRPC takes a fast path (src/server/grpc-unary.ts); what it does not handle must still
// reach connect-node and behave the same.
let provider: FakeProvider;
let gateway: TestGateway;

beforeAll(async () => {
  provider = await startFakeProvider();
  gateway = await startTestGateway({ providers: [{ name: "local", baseUrl: provider.url, retries: 0 }] });
});
afterAll(async () => {
  await gateway?.close();
  await provider?.close();
});
afterEach(() => provider.clear());

function call(options: grpc.ChannelOptions, providerName: string, body: unknown, metadata = new grpc.Metadata()) {
  const client = createGrpcJsClient(gateway.url, options);
  return new Promise<{ error: grpc.ServiceError | null; body?: unknown; headers: Record<string, unknown> }>((resolve) => {
    let headers: Record<string, unknown> = {};
    const pending = client.passthrough(request(providerName, body), metadata, {}, (error, response) => {
      client.close();
      resolve({ error, body: response?.body, headers });
    });
    pending.on("metadata", (received) => (headers = received.getMap()));
  });
}

const compressed = { "grpc.default_compression_algorithm": 2 /* gzip */ };

describe.each([
  { path: "the fast path", options: {} },
  { path: "connect-node (gzip-compressed request)", options: compressed },
])("unary gRPC through $path", ({ options }) => {
  it("answers the provider's JSON with api and metadata, and the no-cache and journal headers", async () => {
    provider.reply(json(200, completion("m")));
    const result = await call(options, "local", { model: "m", extra: [1, "two"] });
    expect(result.error).toBeNull();
    expect(provider.requests[0].json).toEqual({ model: "m", extra: [1, "two"] });
    const key = result.headers["x-journal-key"];
    expect(result.body).toEqual({ ...completion("m"), api: "smarter.sh/v1", metadata: { key } });
    expect(result.headers).toMatchObject(NO_CACHE);
  });

  it("maps an upstream error to its code with the description as message", async () => {
    provider.reply(json(400, errorBody("unknown model")));
    const result = await call(options, "local", { model: "x" });
    expect(result.error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(result.error?.details).toContain("unknown model");
    expect(result.headers).toMatchObject(NO_CACHE);
  });

  it("answers DEADLINE_EXCEEDED for an expired deadline without calling the provider", async () => {
    const metadata = new grpc.Metadata();
    const client = createGrpcJsClient(gateway.url, options);
    const error = await new Promise<grpc.ServiceError | null>((resolve) =>
      client.passthrough(request("local", { model: "m" }), metadata, { deadline: Date.now() - 1 }, (e) => resolve(e)),
    );
    client.close();
    expect(error?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(provider.requests).toHaveLength(0);
  });
});
