import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { create, fromBinary, toBinary, toJsonString, type JsonObject } from "@bufbuild/protobuf";
import { Code, ConnectError, createConnectRouter, type ServiceImpl } from "@connectrpc/connect";
import { universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import {
  PassthroughRequestSchema,
  PassthroughResponseSchema,
  PassthroughService,
  PassthroughStreamResponseSchema,
} from "../../src/gen/smarter/prompt/v1/passthrough_pb.js";
import { encodeGrpcWebTextResponse, withGrpcWebText } from "../../src/server/grpc-web-text.js";

// A real connect router served by Node.js through withGrpcWebText, called with hand-made
// requests over fetch and answers decoded by hand as grpc/grpc doc/PROTOCOL-WEB.md describes.

const ORIGIN = "http://app.example";
const CORS = { "access-control-allow-origin": ORIGIN, "access-control-expose-headers": "grpc-status, grpc-message, x-journal-key" };

let seen: Array<Record<string, string>> = [];
let gate: { promise: Promise<void>; open: () => void };
const impl: Omit<ServiceImpl<typeof PassthroughService>, "listProviders"> = {
  passthrough(request, context) {
    seen.push(Object.fromEntries(context.requestHeader));
    if (request.providerName === "missing") throw new ConnectError("no provider named missing", Code.NotFound);
    context.responseHeader.set("x-journal-key", "k1");
    return { body: { provider: request.providerName, echo: request.body ?? null } };
  },
  async *passthroughStream(request, context) {
    seen.push(Object.fromEntries(context.requestHeader));
    const chunks: JsonObject[] = [{ n: 0, provider: request.providerName }, { n: 1 }, { n: 2 }];
    for (const [i, chunk] of chunks.entries()) {
      if (i === 1) await gate.promise; // the test opens it once it has read the first message
      yield { chunk };
    }
  },
};

let server: Server;
let url: string;
beforeAll(async () => {
  const router = createConnectRouter();
  router.service(PassthroughService, impl);
  const handlers = new Map(router.handlers.map((handler) => [handler.requestPath, withGrpcWebText(handler)]));
  server = createServer((req, res) => {
    for (const [name, value] of Object.entries(CORS)) res.setHeader(name, value); // as a CORS layer in front would
    const handler = handlers.get((req.url ?? "").split("?")[0]);
    if (handler === undefined) return void res.writeHead(404).end();
    handler(universalRequestFromNodeRequest(req, res, undefined, undefined))
      .then((response) => universalResponseToNodeResponse(response, res))
      .catch(() => res.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/smarter.prompt.v1.PassthroughService`;
});
afterAll(() => {
  server.closeAllConnections();
  return new Promise<void>((resolve) => server.close(() => resolve()));
});
afterEach(() => gate.open());
beforeEach(() => {
  seen = [];
  let open!: () => void;
  gate = { promise: new Promise<void>((resolve) => (open = resolve)), open };
});

/** One gRPC-Web frame: a flags byte, a big-endian length, the bytes. */
function frame(flags: number, data: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + data.length);
  out[0] = flags;
  out.writeUInt32BE(data.length, 1);
  out.set(data, 5);
  return out;
}

function requestFrame(providerName: string, body: Record<string, unknown> = { model: "m" }): Buffer {
  return frame(0, toBinary(PassthroughRequestSchema, create(PassthroughRequestSchema, { providerName, body: body as never })));
}

const base64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");

/** Base64 text as grpc-web's client reads it: group by group, as padding may end any group. */
function decodeText(text: string): Buffer {
  expect(text.length % 4, "base64 text of whole groups").toBe(0);
  expect(text).toMatch(/^[A-Za-z0-9+/=]*$/);
  const groups: Buffer[] = [];
  for (let i = 0; i < text.length; i += 4) groups.push(Buffer.from(text.slice(i, i + 4), "base64"));
  return Buffer.concat(groups);
}

interface Frames {
  messages: Buffer[];
  trailer: Record<string, string>;
}

/** The frames of a binary gRPC-Web body: data frames, then one trailer frame (flag 0x80). */
function parseFrames(bytes: Buffer): Frames {
  const messages: Buffer[] = [];
  let trailer: Record<string, string> | undefined;
  for (let pos = 0; pos < bytes.length; ) {
    expect(trailer, "nothing after the trailer frame").toBeUndefined();
    const length = bytes.readUInt32BE(pos + 1);
    const data = bytes.subarray(pos + 5, pos + 5 + length);
    if (bytes[pos] & 0x80) {
      trailer = {};
      for (const line of data.toString("latin1").split("\r\n").filter(Boolean)) {
        const colon = line.indexOf(":");
        trailer[line.slice(0, colon).trim()] = decodeURIComponent(line.slice(colon + 1).trim());
      }
    } else {
      messages.push(Buffer.from(data));
    }
    pos += 5 + length;
  }
  expect(trailer, "a trailer frame").toBeDefined();
  return { messages, trailer: trailer! };
}

function within<T>(ms: number, promise: Promise<T>, failure: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(failure)), ms)));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function post(method: string, body: string | Uint8Array, headers: Record<string, string>) {
  return fetch(`${url}/${method}`, { method: "POST", body, headers: { origin: ORIGIN, authorization: "Bearer t", ...headers } });
}

const text = { "content-type": "application/grpc-web-text", accept: "application/grpc-web-text" };

describe("unary gRPC-Web text", () => {
  it("is decoded, served by connect's gRPC-Web handler, and answered in base64 with the trailer frame", async () => {
    const res = await post("Passthrough", base64(requestFrame("local")), text);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/grpc-web-text+proto");
    const { messages, trailer } = parseFrames(decodeText(await res.text()));
    expect(messages.map((m) => fromBinary(PassthroughResponseSchema, m).body)).toEqual([{ provider: "local", echo: { model: "m" } }]);
    expect(trailer).toEqual({ "grpc-status": "0" });
  });

  it("leaves the CORS headers and the other headers as they are", async () => {
    const res = await post("Passthrough", base64(requestFrame("local")), text);
    await res.text();
    expect(Object.fromEntries(res.headers)).toMatchObject({ ...CORS, "x-journal-key": "k1" });
    expect(seen[0]).toMatchObject({ origin: ORIGIN, authorization: "Bearer t", "content-type": "application/grpc-web", accept: "application/grpc-web-text" });
    expect(seen[0]).not.toHaveProperty("content-length");
  });

  it("reads several padded base64 chunks one after the other, sent in pieces that cut groups", async () => {
    const bytes = requestFrame("local", { model: "m", text: "x".repeat(50) });
    const body = [bytes.subarray(0, 1), bytes.subarray(1, 5), bytes.subarray(5, 9), bytes.subarray(9)].map(base64).join("");
    expect(body.slice(0, -4)).toContain("=");
    const pieces = body.match(/.{1,7}/g)!;
    const stream = new ReadableStream({
      async pull(controller) {
        await new Promise((resolve) => setTimeout(resolve, 2));
        const piece = pieces.shift();
        if (piece === undefined) controller.close();
        else controller.enqueue(new TextEncoder().encode(piece));
      },
    });
    const res = await fetch(`${url}/Passthrough`, { method: "POST", body: stream, headers: text, duplex: "half" } as RequestInit);
    const { messages, trailer } = parseFrames(decodeText(await res.text()));
    expect(trailer["grpc-status"]).toBe("0");
    expect(fromBinary(PassthroughResponseSchema, messages[0]).body).toEqual({ provider: "local", echo: { model: "m", text: "x".repeat(50) } });
  });

  it("answers an error of the implementation as its status in the text trailer", async () => {
    const res = await post("Passthrough", base64(requestFrame("missing")), text);
    expect(res.status).toBe(200);
    expect(parseFrames(decodeText(await res.text()))).toEqual({ messages: [], trailer: { "grpc-status": String(Code.NotFound), "grpc-message": "no provider named missing" } });
  });

  it.each([
    ["a character outside base64", "!!!!", "not base64"],
    ["a length that is not a multiple of 4", base64(requestFrame("local")) + "QQ", "its length is not a multiple of 4"],
    ["padding inside a group", "QQ=Q" + base64(requestFrame("local")), "not base64"],
    ["URL-safe base64", "-_-_" + base64(requestFrame("local")), "not base64"],
  ])("with %s is INVALID_ARGUMENT before the implementation runs", async (_name, body, detail) => {
    for (const method of ["Passthrough", "PassthroughStream"]) {
      const res = await post(method, body, text);
      expect(res.status).toBe(200);
      const { messages, trailer } = parseFrames(decodeText(await res.text()));
      expect(messages).toEqual([]);
      expect(trailer).toEqual({ "grpc-status": String(Code.InvalidArgument), "grpc-message": `invalid grpc-web-text request body (${detail})` });
    }
    expect(seen).toEqual([]);
  });
});

describe("server-streaming gRPC-Web text", () => {
  it("sends each message as base64 of its own as it is produced, the trailer last", async () => {
    // The second message waits for the gate: the first must be readable on its own before it.
    const res = await within(5000, post("PassthroughStream", base64(requestFrame("local")), text), "no response before the second message");
    expect(res.headers.get("content-type")).toBe("application/grpc-web-text+proto");
    const reader = res.body!.getReader();
    let received = "";
    const firstFrame = () => {
      const bytes = decodeText(received.slice(0, received.length - (received.length % 4)));
      return bytes.length >= 5 && bytes.length >= 5 + bytes.readUInt32BE(1) ? bytes.subarray(5, 5 + bytes.readUInt32BE(1)) : undefined;
    };
    while (firstFrame() === undefined) {
      const { value, done } = await within(5000, reader.read(), "the first message did not arrive on its own");
      if (done) throw new Error("the stream ended before the first message");
      received += new TextDecoder().decode(value);
    }
    expect(fromBinary(PassthroughStreamResponseSchema, firstFrame()!).chunk).toEqual({ n: 0, provider: "local" });
    gate.open();
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) received += new TextDecoder().decode(chunk.value);
    const { messages, trailer } = parseFrames(decodeText(received));
    expect(messages.map((m) => fromBinary(PassthroughStreamResponseSchema, m).chunk)).toEqual([{ n: 0, provider: "local" }, { n: 1 }, { n: 2 }]);
    expect(trailer).toEqual({ "grpc-status": "0" });
  });
});

describe("which side is text", () => {
  const binary = (providerName: string) => requestFrame(providerName);
  const jsonFrame = () => frame(0, Buffer.from(toJsonString(PassthroughRequestSchema, create(PassthroughRequestSchema, { providerName: "json", body: { model: "m" } }))));
  it.each([
    { request: "application/grpc-web-text+proto", accept: "application/grpc-web-text+proto", body: base64(binary("a")), answer: "application/grpc-web-text+proto" },
    // As Envoy and tonic-web: the response is text only when Accept asks for it.
    { request: "application/grpc-web-text", accept: undefined, body: base64(binary("a")), answer: "application/grpc-web+proto" },
    { request: "application/grpc-web+proto", accept: "application/grpc-web-text", body: binary("a"), answer: "application/grpc-web-text+proto" },
    { request: "application/grpc-web+proto", accept: undefined, body: binary("a"), answer: "application/grpc-web+proto" },
    { request: "application/grpc-web-text+json", accept: "application/grpc-web-text", body: base64(jsonFrame()), answer: "application/grpc-web-text+json" },
  ])("a $request request with Accept $accept is answered $answer", async ({ request, accept, body, answer }) => {
    const res = await post("Passthrough", body, { "content-type": request, ...(accept && { accept }) });
    expect(res.headers.get("content-type")).toBe(answer);
    const bytes = Buffer.from(await res.arrayBuffer());
    const { trailer, messages } = parseFrames(answer.includes("-text") ? decodeText(bytes.toString("latin1")) : bytes);
    expect(trailer["grpc-status"]).toBe("0");
    expect(messages).toHaveLength(1);
    expect(Object.fromEntries(res.headers)).toMatchObject(CORS);
  });

  it.each([
    ["a GET", "GET", "application/grpc-web-text", 405],
    ["an unsupported codec", "POST", "application/grpc-web-text+thrift", 415],
  ])("leaves connect's answer to %s as it is", async (_name, method, contentType, status) => {
    const res = await fetch(`${url}/Passthrough`, { method, headers: { ...text, "content-type": contentType }, body: method === "GET" ? undefined : "AAAA" });
    expect(res.status).toBe(status);
    expect(res.headers.get("content-type")).toBeNull();
  });
});

describe("encodeGrpcWebTextResponse", () => {
  it("hands the response writer's throw() and return() on to connect's body, which aborts the call with them", async () => {
    const calls: string[] = [];
    const body: AsyncIterator<Uint8Array> = {
      next: async () => ({ done: false, value: new Uint8Array([1]) }),
      throw: async (reason) => (calls.push(`throw ${reason}`), { done: true, value: undefined }),
      return: async () => (calls.push("return"), { done: true, value: undefined }),
    };
    const response = encodeGrpcWebTextResponse({ status: 200, header: new Headers({ "content-type": "application/grpc-web+proto" }), body: { [Symbol.asyncIterator]: () => body } });
    const it = response.body![Symbol.asyncIterator]();
    expect(Buffer.from((await it.next()).value).toString()).toBe("AQ==");
    await it.throw!(new Error("write failed"));
    await it.return!();
    expect(calls).toEqual(["throw Error: write failed", "return"]);
  });
});
