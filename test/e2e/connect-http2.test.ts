import { Code, createClient } from "@connectrpc/connect";
import { compressionGzip, createConnectTransport } from "@connectrpc/connect-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PassthroughService } from "../../src/gen/smarter/prompt/v1/passthrough_pb.js";
import { completion, json, startFakeProvider, type FakeProvider } from "../support/fake-provider.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";
import { NO_CACHE } from "../support/no-cache.js";

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

describe("Connect unary through the gateway, over HTTP/2, with connect-node's own client", () => {
  it.each([
    { name: "protobuf", useBinaryFormat: true },
    { name: "JSON", useBinaryFormat: false },
    { name: "gzip-compressed protobuf", useBinaryFormat: true, sendCompression: compressionGzip },
  ])("answers a $name call with the answer, the journal key and no-cache headers", async (options) => {
    provider.clear();
    provider.reply(json(200, completion("m", "x".repeat(2000))));
    const client = createClient(PassthroughService, createConnectTransport({ baseUrl: gateway.url, httpVersion: "2", ...options }));
    const headers: Record<string, string> = {};
    const response = await client.passthrough(
      { providerName: "local", body: { model: "m" } },
      { onHeader: (received) => received.forEach((value, name) => (headers[name] = value)) },
    );
    expect(response.body?.model).toBe("m");
    expect(response.body?.metadata).toEqual({ key: headers["x-journal-key"] });
    expect(headers).toMatchObject(NO_CACHE);
    expect(provider.requests[0].json).toEqual({ model: "m" });
  });

  it("answers an error with its code", async () => {
    const client = createClient(PassthroughService, createConnectTransport({ baseUrl: gateway.url, httpVersion: "2" }));
    await expect(client.passthrough({ providerName: "nope", body: {} })).rejects.toMatchObject({ code: Code.NotFound });
  });
});
