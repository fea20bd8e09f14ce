// gRPC load generator (its own process): @grpc/grpc-js calling PassthroughService/Passthrough with
// a fixed number of outstanding calls spread over a few channels, a warm-up, then the measured run.
import { create, toBinary, type JsonObject } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { PassthroughRequestSchema, PassthroughService } from "../../src/gen/smarter/prompt/v1/passthrough_pb.js";
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

type UnaryCallback = (error: grpc.ServiceError | null, response?: Buffer) => void;

/**
 * As autocannon sends prebuilt bytes and does not parse answers, the request message is
 * serialized once and each answer is only checked to carry a `body` (field 1, length-delimited,
 * not empty): per call, the client's CPU goes to gRPC itself, which shares the 2 cores with the
 * gateway, rather than to protobuf.
 */
const passthrough = {
  path: `/${PassthroughService.typeName}/Passthrough`,
  serialize: (bytes: Buffer) => bytes,
  deserialize: (bytes: Buffer) => bytes,
};

function hasBody(answer: Buffer | undefined): boolean {
  return answer !== undefined && answer.length > 2 && answer[0] === 0x0a && answer[1] !== 0;
}

function loadClients(params: GrpcLoadParams): grpc.Client[] {
  return Array.from({ length: Math.max(1, params.channels) }, (_, index) =>
    // A distinct option value per client gives each its own channel (HTTP/2 connection).
    new grpc.Client(params.address, grpc.credentials.createInsecure(), {
      "grpc.use_local_subchannel_pool": 1,
      "bench.channel": index,
    }),
  );
}

async function generate(): Promise<GrpcLoadResult> {
  const params = loadParams<GrpcLoadParams>();
  const clients = loadClients(params);
  const request = Buffer.from(
    toBinary(PassthroughRequestSchema, create(PassthroughRequestSchema, { providerName: params.providerName, body: params.body as JsonObject })),
  );
  const metadata = new grpc.Metadata();
  if (params.authorization) metadata.set("authorization", params.authorization);

  let measuring = false;
  let stopAt = 0;
  let ok = 0;
  let errors = 0;
  let firstError: string | undefined;
  const errorCodes: Record<string, number> = {};
  const latencies: number[] = [];

  const call = (client: grpc.Client): Promise<void> =>
    new Promise((resolve) => {
      const started = performance.now();
      const done: UnaryCallback = (error, response) => {
        const elapsed = performance.now() - started;
        if (measuring && performance.now() <= stopAt) {
          if (error || !hasBody(response)) {
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
      };
      client.makeUnaryRequest(passthrough.path, passthrough.serialize, passthrough.deserialize, request, metadata, { deadline: Date.now() + 10_000 }, done);
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
