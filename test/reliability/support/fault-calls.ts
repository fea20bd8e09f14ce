/**
 * Calls for the provider-fault suite that never hold an unbounded answer in the test's own
 * memory: whatever the gateway sends back, at most `CAP` bytes of it are kept.
 */
import * as grpc from "@grpc/grpc-js";
import { createClient, ConnectError } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { PassthroughService, type PassthroughStreamResponse } from "../../../src/gen/smarter/prompt/v1/passthrough_pb.js";
import { codeName, createGrpcJsClient, request } from "../../support/clients.js";

const CAP = 1024 * 1024;

/** Where a call goes, and the headers that authenticate it. */
export interface Target {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
}

function metadataOf(headers: Target["headers"]): grpc.Metadata {
  const metadata = new grpc.Metadata();
  for (const [name, value] of Object.entries(headers)) metadata.set(name, value);
  return metadata;
}

export const UNARY_PROTOCOLS = ["rest", "grpc", "connect"] as const;
export type UnaryProtocol = (typeof UNARY_PROTOCOLS)[number];

export interface FaultResult {
  /** HTTP status (REST, Connect). */
  status?: number;
  /** gRPC code name ("unavailable"), or "ok". */
  code: string;
  message?: string;
  /** The REST error envelope, when there is one. */
  body?: unknown;
  /** Bytes of the answer received, also past CAP. */
  bytes: number;
}

export interface CappedBody {
  /** The first CAP bytes. */
  head: Buffer;
  /** The same, decoded. */
  text: string;
  /** The last 64 KiB or so, decoded: where an error event ends a long stream. */
  tail: string;
  /** Bytes received in all. */
  bytes: number;
}

/** Reads a fetch body keeping at most its first CAP bytes and its last pieces. */
async function readCapped(response: Response): Promise<CappedBody> {
  const parts: Buffer[] = [];
  const tail: Buffer[] = [];
  let tailBytes = 0;
  let bytes = 0;
  for await (const piece of response.body as unknown as AsyncIterable<Uint8Array>) {
    if (bytes < CAP) parts.push(Buffer.from(piece.subarray(0, CAP - bytes)));
    bytes += piece.length;
    tail.push(Buffer.from(piece));
    tailBytes += piece.length;
    while (tailBytes - tail[0].length > 64 * 1024) tailBytes -= tail.shift()!.length;
  }
  const head = Buffer.concat(parts);
  return { head, text: head.toString("utf8"), tail: Buffer.concat(tail).toString("utf8"), bytes };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** One Passthrough call over REST, gRPC or Connect (JSON). */
export async function unary(protocol: UnaryProtocol, { url, headers }: Target, providerName: string, body: object): Promise<FaultResult> {
  if (protocol === "grpc") {
    const client = createGrpcJsClient(url);
    try {
      return await new Promise<FaultResult>((resolve) => {
        client.passthrough(request(providerName, body), metadataOf(headers), {}, (error, response) => {
          if (error) resolve({ code: codeName(error.code), message: error.details, bytes: 0 });
          else resolve({ code: "ok", body: response?.body, bytes: 0 });
        });
      });
    } finally {
      client.close();
    }
  }
  const target =
    protocol === "rest" ? `${url}/api/v1/prompts/passthrough/${providerName}/` : `${url}/smarter.prompt.v1.PassthroughService/Passthrough`;
  const response = await fetch(target, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(protocol === "rest" ? body : { providerName, body }),
  });
  const { text, bytes } = await readCapped(response);
  const json = parseJson(text) as { code?: string; message?: string; error?: { code?: string; description?: string } } | undefined;
  if (response.ok) return { status: response.status, code: "ok", body: json, bytes };
  const code = protocol === "rest" ? json?.error?.code : json?.code;
  const message = protocol === "rest" ? json?.error?.description : json?.message;
  return { status: response.status, code: code ?? "?", message, body: json, bytes };
}

/** A REST `"stream": true` call: its status and (at most CAP bytes of) its body. */
export async function restStream({ url, headers }: Target, providerName: string, body: object): Promise<CappedBody & { status: number }> {
  const response = await fetch(`${url}/api/v1/prompts/passthrough/${providerName}/`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify({ ...body, stream: true }),
  });
  return { status: response.status, ...(await readCapped(response)) };
}

export interface CountedStream {
  /** Messages received. */
  count: number;
  /** The first few chunks. */
  first: unknown[];
  /** "ok" when it ended cleanly, else the gRPC code name. */
  code: string;
  message?: string;
}

/** A PassthroughStream call over gRPC or Connect that counts its messages and keeps the first ten. */
export async function rpcStream(protocol: "grpc" | "connect", { url, headers }: Target, providerName: string, body: object): Promise<CountedStream> {
  const result: CountedStream = { count: 0, first: [], code: "ok" };
  const take = (chunk: unknown) => {
    if (result.count++ < 10) result.first.push(chunk);
  };
  if (protocol === "grpc") {
    const client = createGrpcJsClient(url);
    const call = client.passthroughStream(request(providerName, body), metadataOf(headers));
    await new Promise<void>((resolve) => {
      call.on("data", (message: PassthroughStreamResponse) => take(message.chunk));
      call.on("error", (error: grpc.ServiceError) => {
        result.code = codeName(error.code);
        result.message = error.details;
        resolve();
      });
      call.on("end", () => resolve());
    });
    client.close();
    return result;
  }
  const client = createClient(PassthroughService, createConnectTransport({ baseUrl: url, httpVersion: "1.1" }));
  try {
    for await (const message of client.passthroughStream(request(providerName, body), { headers })) take(message.chunk);
  } catch (error) {
    const connectError = ConnectError.from(error);
    result.code = codeName(connectError.code);
    result.message = connectError.rawMessage;
  }
  return result;
}
