import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CallRecord } from "../../src/call/record.js";
import { PassthroughRequestSchema, PassthroughResponseSchema } from "../../src/gen/smarter/prompt/v1/passthrough_pb.js";
import { completion, json, startFakeProvider, type FakeProvider } from "../support/fake-provider.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

// gRPC-Web's text mode, the default of Google's grpc-web browser client, through the gateway:
// the request base64, the answer base64 frame by frame, recorded like any other call.
let provider: FakeProvider;
let gateway: TestGateway;
const ended: CallRecord[] = [];

beforeAll(async () => {
  provider = await startFakeProvider();
  gateway = await startTestGateway({ providers: [{ name: "local", baseUrl: provider.url }] }, {}, { onCallEnd: [(call) => void ended.push(call)] });
});
afterAll(async () => {
  await gateway?.close();
  await provider?.close();
});

describe("gRPC-Web text mode", () => {
  it("answers a unary call in text, with the journal key, and records it as grpc-web", async () => {
    provider.reply(json(200, completion("m")));
    const message = toBinary(PassthroughRequestSchema, create(PassthroughRequestSchema, { providerName: "local", body: { model: "m" } }));
    const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, message.length]), message]);
    const response = await fetch(`${gateway.url}/smarter.prompt.v1.PassthroughService/Passthrough`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web-text", accept: "application/grpc-web-text", "x-grpc-web": "1" },
      body: frame.toString("base64"),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^application\/grpc-web-text/);
    const key = response.headers.get("x-journal-key");
    expect(key).toMatch(/^[0-9a-f]{64}$/);
    // Each frame is base64 with its own padding: decode them one after another.
    const text = await response.text();
    const bytes = Buffer.concat((text.match(/[A-Za-z0-9+/]+={0,2}/g) ?? []).map((part) => Buffer.from(part, "base64")));
    const length = bytes.readUInt32BE(1);
    const answer = fromBinary(PassthroughResponseSchema, bytes.subarray(5, 5 + length));
    expect(answer.body?.model).toBe("m");
    expect(bytes.subarray(5 + length + 5).toString()).toContain("grpc-status: 0");
    for (let waited = 0; ended.length === 0 && waited < 2000; waited += 10) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(ended[0]).toMatchObject({ protocol: "grpc-web", journalKey: key, outcome: { code: 0 } });
  });
});
