import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createGrpcJsClient, request } from "../support/clients.js";
import { completion, json, startFakeProvider, type FakeProvider } from "../support/fake-provider.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

// The gRPC unary fast path reads the request with its own codec (src/server/fast-paths/message-codec.ts);
// a body nested past protobuf-es's recursion limit is the caller's fault, not the gateway's.
// connect-node answers the same body INTERNAL "parse binary: …", its binary serialization's
// code, before any interceptor runs; that divergence is kept on purpose (the caller's error is
// an INVALID_ARGUMENT, as connect's own JSON path and SPEC section 8 say), and shown last.
let provider: FakeProvider;
let gateway: TestGateway;
let connectNode: TestGateway;

beforeAll(async () => {
  provider = await startFakeProvider();
  gateway = await startTestGateway({ providers: [{ name: "local", baseUrl: provider.url, retries: 0 }], server: { fastPaths: true } });
  connectNode = await startTestGateway({ providers: [{ name: "local", baseUrl: provider.url, retries: 0 }], server: { fastPaths: false } });
});
afterAll(async () => {
  await gateway?.close();
  await connectNode?.close();
  await provider?.close();
});

/** `{"a": {"a": … true}}` with `levels` objects: the request message nests 2 × levels + 1 deep. */
function nestedBody(levels: number): Record<string, unknown> {
  let value: unknown = true;
  for (let i = 1; i < levels; i++) value = { a: value };
  return { model: "m", a: value };
}

function call(body: unknown, url = gateway.url) {
  const client = createGrpcJsClient(url);
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

  it("is INTERNAL through connect-node, the divergence kept on purpose", async () => {
    provider.clear();
    const error = await call(nestedBody(50), connectNode.url);
    expect(error?.code).toBe(grpc.status.INTERNAL);
    expect(error?.details).toMatch(/^parse binary/);
    expect(provider.requests).toHaveLength(0);
  });
});
