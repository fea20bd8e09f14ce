// gRPC load generator (its own process): @grpc/grpc-js calling PassthroughService/Passthrough with
// a fixed number of outstanding calls spread over a few channels, a warm-up, then the measured run.
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { loadParams, markStart, runGenerator } from "./load-ipc.js";
import { summarize, type LatencySummary } from "./stats.js";

export interface GrpcLoadParams {
  address: string;
  authorization?: string;
  providerName: string;
  body: Record<string, unknown>;
  concurrency: number;
  channels: number;
  durationS: number;
  warmupS: number;
}

export interface GrpcLoadResult {
  seconds: number;
  ok: number;
  errors: number;
  errorCodes: Record<string, number>;
  firstError?: string;
  latencyMs: LatencySummary;
}

type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** google.protobuf.Value as proto-loader represents it (camelCase, oneof members). */
function toValue(value: JsonValue): Record<string, unknown> {
  if (value === null) return { nullValue: "NULL_VALUE" };
  if (typeof value === "number") return { numberValue: value };
  if (typeof value === "string") return { stringValue: value };
  if (typeof value === "boolean") return { boolValue: value };
  if (Array.isArray(value)) return { listValue: { values: value.map(toValue) } };
  return { structValue: toStruct(value) };
}

function toStruct(object: { [key: string]: JsonValue }): Record<string, unknown> {
  return { fields: Object.fromEntries(Object.entries(object).map(([key, value]) => [key, toValue(value)])) };
}

type UnaryCall = (
  request: unknown,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, response?: { body?: { fields?: Record<string, unknown> } }) => void,
) => void;

function loadClients(params: GrpcLoadParams): Array<{ Passthrough: UnaryCall; close(): void }> {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
  const definition = protoLoader.loadSync(path.join(root, "proto/smarter/prompt/v1/passthrough.proto"), {
    keepCase: false,
    longs: String,
    enums: String,
    defaults: false,
    oneofs: true,
    includeDirs: [path.join(root, "proto"), path.join(root, "node_modules/google-proto-files")],
  });
  const loaded = grpc.loadPackageDefinition(definition) as unknown as {
    smarter: { prompt: { v1: { PassthroughService: grpc.ServiceClientConstructor } } };
  };
  const Service = loaded.smarter.prompt.v1.PassthroughService;
  return Array.from({ length: Math.max(1, params.channels) }, (_, index) => {
    // A distinct option value per client gives each its own channel (HTTP/2 connection).
    const client = new Service(params.address, grpc.credentials.createInsecure(), {
      "grpc.use_local_subchannel_pool": 1,
      "bench.channel": index,
    }) as unknown as { Passthrough: UnaryCall; close(): void };
    return client;
  });
}

async function generate(): Promise<GrpcLoadResult> {
  const params = loadParams<GrpcLoadParams>();
  const clients = loadClients(params);
  const request = { providerName: params.providerName, body: toStruct(params.body as { [key: string]: JsonValue }) };
  const metadata = new grpc.Metadata();
  if (params.authorization) metadata.set("authorization", params.authorization);

  let measuring = false;
  let stopAt = 0;
  let ok = 0;
  let errors = 0;
  let firstError: string | undefined;
  const errorCodes: Record<string, number> = {};
  const latencies: number[] = [];

  const call = (client: { Passthrough: UnaryCall }): Promise<void> =>
    new Promise((resolve) => {
      const started = performance.now();
      client.Passthrough(request, metadata, { deadline: Date.now() + 10_000 }, (error, response) => {
        const elapsed = performance.now() - started;
        if (measuring && performance.now() <= stopAt) {
          if (error || !response?.body?.fields) {
            errors++;
            const code = error ? grpc.status[error.code] ?? String(error.code) : "EMPTY_BODY";
            errorCodes[code] = (errorCodes[code] ?? 0) + 1;
            firstError ??= error ? `${code}: ${error.details}` : "response without body";
          } else {
            ok++;
            latencies.push(elapsed);
          }
        }
        resolve();
      });
    });

  const worker = async (index: number, until: () => number): Promise<void> => {
    const client = clients[index % clients.length];
    while (performance.now() < until()) await call(client);
  };
  const phase = (seconds: number): Promise<void[]> => {
    stopAt = performance.now() + seconds * 1000;
    return Promise.all(Array.from({ length: params.concurrency }, (_, index) => worker(index, () => stopAt)));
  };

  if (params.warmupS > 0) await phase(params.warmupS);
  await markStart();
  measuring = true;
  const started = performance.now();
  await phase(params.durationS);
  const seconds = (stopAt - started) / 1000;
  for (const client of clients) client.close();
  return { seconds, ok, errors, errorCodes, firstError, latencyMs: summarize(latencies) };
}

void runGenerator(generate);
