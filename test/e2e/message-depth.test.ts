import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createGrpcJsClient, request } from "../support/clients.js";
import { completion, json, startFakeProvider, type FakeProvider } from "../support/fake-provider.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

// The gRPC unary fast path reads the request with its own codec (src/server/fast-paths/message-codec.ts);
// a body nested past protobuf-es's recursion limit is the caller's fault, not the gateway's.
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

/** `{"a": {"a": … true}}` with `levels` objects: the request message nests 2 × levels + 1 deep. */
function nestedBody(levels: number): Record<string, unknown> {
  let value: unknown = true;
  for (let i = 1; i < levels; i++) value = { a: value };
  return { model: "m", a: value };
}

function call(body: unknown) {
  const client = createGrpcJsClient(gateway.url);
  return new Promise<grpc.ServiceError | null>((resolve) => {
    client.passthrough(request("local", body), new grpc.Metadata(), {}, (error) => {
      client.close();
      resolve(error);
    });
  });
}

describe("a unary gRPC request through the fast path", () => {
  it("nested up to the limit reaches the provider", async () => {
    provider.reply(json(200, completion("m")));
    expect(await call(nestedBody(49))).toBeNull();
    expect(provider.requests).toHaveLength(1);
  });

  it("nested past the limit is INVALID_ARGUMENT saying so, and the provider is not called", async () => {
    provider.clear();
    const error = await call(nestedBody(50));
    expect(error?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(error?.details).toBe("message is nested too deeply (more than 100 levels)");
    expect(provider.requests).toHaveLength(0);
  });
});
