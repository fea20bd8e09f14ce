import * as http2 from "node:http2";
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type JsonObject } from "@bufbuild/protobuf";
import { Code, createClient, ConnectError } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import {
  PassthroughRequestSchema,
  PassthroughResponseSchema,
  PassthroughService,
  PassthroughStreamResponseSchema,
  type PassthroughRequest,
  type PassthroughResponse,
  type PassthroughStreamResponse,
} from "../../src/gen/smarter/prompt/v1/passthrough_pb.js";

/** What any protocol's unary call came back with, in one shape for table-driven tests. */
export interface UnaryResult {
  ok: boolean;
  /** REST/Connect HTTP status; gRPC: undefined. */
  status?: number;
  /** gRPC code name, snake case ("not_found"), when it failed. */
  code?: string;
  message?: string;
  /** The answer (ok) or the error body (REST). */
  body?: unknown;
  headers: Record<string, string>;
}

export interface ProtocolClient {
  readonly protocol: "grpc" | "grpc-web" | "connect" | "rest";
  unary(providerName: string, body: unknown): Promise<UnaryResult>;
  close(): void;
}

const CODE_NAMES = ["ok", "canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found", "already_exists", "permission_denied", "resource_exhausted", "failed_precondition", "aborted", "out_of_range", "unimplemented", "internal", "unavailable", "data_loss", "unauthenticated"];

export function codeName(code: number): string {
  return CODE_NAMES[code] ?? String(code);
}

/** A @grpc/grpc-js client built from the generated protobuf-es schemas. */
export function createGrpcJsClient(url: string, channelOptions: grpc.ChannelOptions = {}) {
  const serialize = <T extends PassthroughRequest>(message: T) => Buffer.from(toBinary(PassthroughRequestSchema, message));
  const definition = {
    passthrough: {
      path: "/smarter.prompt.v1.PassthroughService/Passthrough",
      requestStream: false,
      responseStream: false,
      requestSerialize: serialize,
      requestDeserialize: (bytes: Buffer) => fromBinary(PassthroughRequestSchema, bytes),
      responseSerialize: (message: PassthroughResponse) => Buffer.from(toBinary(PassthroughResponseSchema, message)),
      responseDeserialize: (bytes: Buffer) => fromBinary(PassthroughResponseSchema, bytes),
    },
    passthroughStream: {
      path: "/smarter.prompt.v1.PassthroughService/PassthroughStream",
      requestStream: false,
      responseStream: true,
      requestSerialize: serialize,
      requestDeserialize: (bytes: Buffer) => fromBinary(PassthroughRequestSchema, bytes),
      responseSerialize: (message: PassthroughStreamResponse) => Buffer.from(toBinary(PassthroughStreamResponseSchema, message)),
      responseDeserialize: (bytes: Buffer) => fromBinary(PassthroughStreamResponseSchema, bytes),
    },
  } satisfies grpc.ServiceDefinition;
  const Client = grpc.makeGenericClientConstructor(definition, "PassthroughService");
  const client = new Client(new URL(url).host, grpc.credentials.createInsecure(), channelOptions) as unknown as grpc.Client & {
    passthrough: (
      request: PassthroughRequest,
      metadata: grpc.Metadata,
      options: grpc.CallOptions,
      callback: (error: grpc.ServiceError | null, response?: PassthroughResponse) => void,
    ) => grpc.ClientUnaryCall;
    passthroughStream: (request: PassthroughRequest, metadata: grpc.Metadata, options?: grpc.CallOptions) => grpc.ClientReadableStream<PassthroughStreamResponse>;
  };
  return client;
}

export function request(providerName: string, body: unknown): PassthroughRequest {
  return create(PassthroughRequestSchema, { providerName, body: body as JsonObject });
}

/** Headers every call of a client sends (an authorization, say). */
export type CallHeaders = Record<string, string>;

function metadataOf(headers: CallHeaders): grpc.Metadata {
  const metadata = new grpc.Metadata();
  for (const [name, value] of Object.entries(headers)) metadata.set(name, value);
  return metadata;
}

function grpcClient(url: string, callHeaders: CallHeaders): ProtocolClient {
  const client = createGrpcJsClient(url);
  return {
    protocol: "grpc",
    unary: (providerName, body) =>
      new Promise((resolve) => {
        const headers: Record<string, string> = {};
        const call = client.passthrough(request(providerName, body), metadataOf(callHeaders), {}, (error, response) => {
          if (error) {
            for (const [key, value] of Object.entries(error.metadata?.getMap() ?? {})) headers[key] ??= String(value);
            resolve({ ok: false, code: codeName(error.code), message: error.details, headers });
          }
          else resolve({ ok: true, body: response?.body, headers });
        });
        call.on("metadata", (metadata) => {
          for (const [key, value] of Object.entries(metadata.getMap())) headers[key] = String(value);
        });
      }),
    close: () => client.close(),
  };
}

function grpcWebClient(url: string, callHeaders: CallHeaders): ProtocolClient {
  const client = createClient(PassthroughService, createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1" }));
  return {
    protocol: "grpc-web",
    async unary(providerName, body) {
      const headers: Record<string, string> = {};
      try {
        const response = await client.passthrough(request(providerName, body), {
          headers: callHeaders,
          onHeader: (h) => h.forEach((value, key) => (headers[key] = value)),
        });
        return { ok: true, body: response.body, headers };
      } catch (error) {
        const connectError = ConnectError.from(error);
        connectError.metadata.forEach((value, key) => (headers[key] = value));
        return { ok: false, code: codeName(connectError.code), message: connectError.rawMessage, headers };
      }
    },
    close: () => undefined,
  };
}

function connectJsonClient(url: string, callHeaders: CallHeaders): ProtocolClient {
  return {
    protocol: "connect",
    async unary(providerName, body) {
      const response = await fetch(`${url}/smarter.prompt.v1.PassthroughService/Passthrough`, {
        method: "POST",
        headers: { "content-type": "application/json", ...callHeaders },
        body: JSON.stringify({ providerName, body }),
      });
      const headers = Object.fromEntries(response.headers);
      const json = (await response.json()) as { body?: unknown; code?: string; message?: string };
      if (response.ok) return { ok: true, status: response.status, body: json.body, headers };
      return { ok: false, status: response.status, code: json.code, message: json.message, body: json, headers };
    },
    close: () => undefined,
  };
}

function restClient(url: string, callHeaders: CallHeaders): ProtocolClient {
  return {
    protocol: "rest",
    async unary(providerName, body) {
      const response = await fetch(`${url}/api/v1/prompts/passthrough/${encodeURIComponent(providerName)}/`, {
        method: "POST",
        headers: { "content-type": "application/json", ...callHeaders },
        body: JSON.stringify(body),
      });
      const headers = Object.fromEntries(response.headers);
      const json = (await response.json()) as { error?: { code?: string; description?: string } };
      if (response.ok) return { ok: true, status: response.status, body: json, headers };
      return { ok: false, status: response.status, code: json.error?.code, message: json.error?.description, body: json, headers };
    },
    close: () => undefined,
  };
}

export const PROTOCOLS = ["grpc", "grpc-web", "connect", "rest"] as const;

export function createProtocolClient(protocol: (typeof PROTOCOLS)[number], url: string, headers: CallHeaders = {}): ProtocolClient {
  switch (protocol) {
    case "grpc":
      return grpcClient(url, headers);
    case "grpc-web":
      return grpcWebClient(url, headers);
    case "connect":
      return connectJsonClient(url, headers);
    case "rest":
      return restClient(url, headers);
  }
}

/** What a server-streaming call delivered: its chunks in order and how it ended. */
export interface StreamResult {
  chunks: unknown[];
  /** Date.now() when each chunk arrived. */
  arrivals: number[];
  /** Undefined when it ended cleanly; else the gRPC code name. */
  code?: string;
  message?: string;
}

export const STREAM_PROTOCOLS = ["grpc", "grpc-web", "connect"] as const;

/**
 * Calls PassthroughStream over one RPC protocol. `onChunk` may abort the call through
 * `controller`; `timeoutMs` sets the caller's deadline (grpc-timeout / connect-timeout-ms).
 */
export async function callStream(
  protocol: (typeof STREAM_PROTOCOLS)[number],
  url: string,
  providerName: string,
  body: unknown,
  options: {
    timeoutMs?: number;
    headers?: CallHeaders;
    onChunk?: (index: number, controller: AbortController) => void;
    /** Told of the response headers (lower-cased names), e.g. to read `x-journal-key`. */
    onHeaders?: (headers: Record<string, string>) => void;
  } = {},
): Promise<StreamResult> {
  const result: StreamResult = { chunks: [], arrivals: [] };
  const controller = new AbortController();
  if (protocol === "grpc") {
    const client = createGrpcJsClient(url);
    const deadline = options.timeoutMs === undefined ? undefined : Date.now() + options.timeoutMs;
    const call = client.passthroughStream(request(providerName, body), metadataOf(options.headers ?? {}), deadline ? { deadline } : {});
    controller.signal.addEventListener("abort", () => call.cancel());
    call.on("metadata", (metadata: grpc.Metadata) => {
      const headers = Object.fromEntries(Object.entries(metadata.getMap()).map(([name, value]) => [name, String(value)]));
      options.onHeaders?.(headers);
    });
    await new Promise<void>((resolve) => {
      call.on("data", (message: PassthroughStreamResponse) => {
        result.chunks.push(message.chunk);
        result.arrivals.push(Date.now());
        options.onChunk?.(result.chunks.length - 1, controller);
      });
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
  const transport =
    protocol === "grpc-web"
      ? createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1" })
      : createConnectTransport({ baseUrl: url, httpVersion: "1.1" });
  const client = createClient(PassthroughService, transport);
  try {
    for await (const message of client.passthroughStream(request(providerName, body), {
      signal: controller.signal,
      timeoutMs: options.timeoutMs,
      headers: options.headers,
      onHeader: (headers) => options.onHeaders?.(Object.fromEntries(headers)),
    })) {
      result.chunks.push(message.chunk);
      result.arrivals.push(Date.now());
      options.onChunk?.(result.chunks.length - 1, controller);
    }
  } catch (error) {
    const connectError = ConnectError.from(error);
    result.code = codeName(connectError.code);
    result.message = connectError.rawMessage;
  }
  return result;
}

const UNARY_PROCEDURE = "/smarter.prompt.v1.PassthroughService/Passthrough";

/** Sends a body that cannot be decoded, in each protocol's own form; resolves with the code and key the caller got. */
export async function sendUndecodable(protocol: (typeof PROTOCOLS)[number], url: string, headers: CallHeaders = {}): Promise<{ code: Code; journalKey: string | null }> {
  if (protocol === "rest" || protocol === "connect") {
    const path = protocol === "rest" ? "/api/v1/prompts/passthrough/local/" : UNARY_PROCEDURE;
    const response = await fetch(url + path, { method: "POST", headers: { ...headers, "content-type": "application/json" }, body: "{not json" });
    const body = (await response.json()) as { code?: string; error?: { code: string } };
    const name = body.error?.code ?? body.code;
    return { code: codeOf(name), journalKey: response.headers.get("x-journal-key") };
  }
  // gRPC and gRPC-Web: one envelope whose bytes are no PassthroughRequest (field 2 of wire type 7).
  const message = Buffer.from([0x17, 0xff, 0xff]);
  const envelope = Buffer.concat([Buffer.from([0, 0, 0, 0, message.length]), message]);
  const session = http2.connect(url);
  try {
    return await new Promise((resolve, reject) => {
      const stream = session.request({
        ":method": "POST",
        ":path": UNARY_PROCEDURE,
        ...headers,
        "content-type": protocol === "grpc" ? "application/grpc" : "application/grpc-web+proto",
        te: "trailers",
      });
      let answered: http2.IncomingHttpHeaders = {};
      const body: Buffer[] = [];
      stream.on("response", (h) => (answered = h));
      stream.on("data", (chunk: Buffer) => body.push(chunk));
      stream.on("trailers", (trailers) => (answered = { ...answered, ...trailers }));
      stream.on("end", () => {
        let status = answered["grpc-status"];
        if (status === undefined) status = /grpc-status: ?(\d+)/.exec(Buffer.concat(body).toString("latin1"))?.[1];
        resolve({ code: Number(status) as Code, journalKey: (answered["x-journal-key"] as string | undefined) ?? null });
      });
      stream.on("error", reject);
      stream.end(envelope);
    });
  } finally {
    session.close();
  }
}

function codeOf(name: string | undefined): Code {
  const entry = Object.entries(Code).find(([key]) => key.replace(/[A-Z]/g, (c, i) => (i ? "_" : "") + c.toLowerCase()) === name);
  return (entry?.[1] as Code | undefined) ?? Code.Unknown;
}
