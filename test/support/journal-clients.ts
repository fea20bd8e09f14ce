import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, toJson, type DescMessage, type JsonValue, type MessageShape } from "@bufbuild/protobuf";
import { ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import {
  GetJournalEntryRequestSchema,
  JournalEntrySchema,
  JournalService,
  ListJournalEntriesRequestSchema,
  ListJournalEntriesResponseSchema,
} from "../../src/gen/smarter/prompt/v1/journal_pb.js";
import { codeName, PROTOCOLS, type CallHeaders } from "./clients.js";

/** What a JournalService call came back with on any protocol, in one shape. */
export interface JournalResult {
  ok: boolean;
  /** REST/Connect HTTP status; gRPC and gRPC-Web: undefined. */
  status?: number;
  /** The snake_case code name, when it failed. */
  code?: string;
  message?: string;
  /** The answer as JSON with every default written (as the REST door writes it), or the REST error body. */
  body?: JsonValue;
  headers: Record<string, string>;
}

export interface ListParams {
  pageSize?: number;
  pageToken?: string;
  providerName?: string;
}

export interface JournalClient {
  readonly protocol: (typeof PROTOCOLS)[number];
  get(journalKey: string): Promise<JournalResult>;
  list(params?: ListParams): Promise<JournalResult>;
  close(): void;
}

const asJson = <Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>) => toJson(schema, message, { alwaysEmitImplicit: true });

/** A JournalService client over one protocol: @grpc/grpc-js, connect's gRPC-Web and Connect (JSON) transports, or fetch on the REST paths. */
export function createJournalClient(protocol: (typeof PROTOCOLS)[number], url: string, headers: CallHeaders = {}): JournalClient {
  switch (protocol) {
    case "grpc":
      return grpcJournalClient(url, headers);
    case "grpc-web":
    case "connect":
      return connectJournalClient(protocol, url, headers);
    case "rest":
      return restJournalClient(url, headers);
  }
}

function grpcJournalClient(url: string, headers: CallHeaders): JournalClient {
  const client = new grpc.Client(new URL(url).host, grpc.credentials.createInsecure());
  const metadata = () => {
    const m = new grpc.Metadata();
    for (const [name, value] of Object.entries(headers)) m.set(name, value);
    return m;
  };
  const unary = <I extends DescMessage, O extends DescMessage>(method: string, input: I, output: O, message: MessageShape<I>) =>
    new Promise<JournalResult>((resolve) => {
      const received: Record<string, string> = {};
      const call = client.makeUnaryRequest(
        `/smarter.prompt.v1.JournalService/${method}`,
        (value: MessageShape<I>) => Buffer.from(toBinary(input, value)),
        (bytes: Buffer) => fromBinary(output, bytes),
        message,
        metadata(),
        (error: grpc.ServiceError | null, response?: MessageShape<O>) => {
          if (error) {
            for (const [key, value] of Object.entries(error.metadata?.getMap() ?? {})) received[key] ??= String(value);
            resolve({ ok: false, code: codeName(error.code), message: error.details, headers: received });
          } else resolve({ ok: true, body: asJson(output, response as MessageShape<O>), headers: received });
        },
      );
      call.on("metadata", (m) => {
        for (const [key, value] of Object.entries(m.getMap())) received[key] = String(value);
      });
    });
  return {
    protocol: "grpc",
    get: (journalKey) => unary("GetJournalEntry", GetJournalEntryRequestSchema, JournalEntrySchema, create(GetJournalEntryRequestSchema, { journalKey })),
    list: (params = {}) =>
      unary("ListJournalEntries", ListJournalEntriesRequestSchema, ListJournalEntriesResponseSchema, create(ListJournalEntriesRequestSchema, params)),
    close: () => client.close(),
  };
}

function connectJournalClient(protocol: "grpc-web" | "connect", url: string, headers: CallHeaders): JournalClient {
  const transport =
    protocol === "grpc-web" ? createGrpcWebTransport({ baseUrl: url, httpVersion: "1.1" }) : createConnectTransport({ baseUrl: url, httpVersion: "1.1" });
  const client = createClient(JournalService, transport);
  const call = async <O extends DescMessage>(output: O, invoke: (options: { headers: CallHeaders; onHeader(h: Headers): void }) => Promise<MessageShape<O>>) => {
    const received: Record<string, string> = {};
    try {
      const response = await invoke({ headers, onHeader: (h) => h.forEach((value, key) => (received[key] = value)) });
      return { ok: true, body: asJson(output, response), headers: received };
    } catch (error) {
      const connectError = ConnectError.from(error);
      connectError.metadata.forEach((value, key) => (received[key] = value));
      return { ok: false, code: codeName(connectError.code), message: connectError.rawMessage, headers: received };
    }
  };
  return {
    protocol,
    get: (journalKey) => call(JournalEntrySchema, (options) => client.getJournalEntry({ journalKey }, options)),
    list: (params = {}) => call(ListJournalEntriesResponseSchema, (options) => client.listJournalEntries(params, options)),
    close: () => undefined,
  };
}

function restJournalClient(url: string, headers: CallHeaders): JournalClient {
  const get = async (path: string): Promise<JournalResult> => {
    const response = await fetch(`${url}${path}`, { headers });
    const received = Object.fromEntries(response.headers);
    const body = (await response.json()) as JsonValue & { error?: { code?: string; description?: string } };
    if (response.ok) return { ok: true, status: response.status, body, headers: received };
    return { ok: false, status: response.status, code: body.error?.code, message: body.error?.description, body, headers: received };
  };
  return {
    protocol: "rest",
    get: (journalKey) => get(`/api/v1/prompts/journal/${encodeURIComponent(journalKey)}`),
    list: (params = {}) => {
      const query = new URLSearchParams();
      if (params.pageSize !== undefined) query.set("page_size", String(params.pageSize));
      if (params.pageToken !== undefined) query.set("page_token", params.pageToken);
      if (params.providerName !== undefined) query.set("provider_name", params.providerName);
      const search = query.size > 0 ? `?${query}` : "";
      return get(`/api/v1/prompts/journal${search}`);
    },
    close: () => undefined,
  };
}
