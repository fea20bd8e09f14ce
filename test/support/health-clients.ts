import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import {
  HealthCheckRequestSchema,
  HealthCheckResponseSchema,
  type HealthCheckResponse,
  type HealthCheckResponse_ServingStatus as ServingStatus,
} from "../../src/gen/grpc/health/v1/health_pb.js";
import { codeName } from "./clients.js";

/** protobuf-es (de)serializers for a grpc-js call. */
export function codec<S extends DescMessage>(schema: S) {
  return {
    serialize: (message: MessageShape<S>) => Buffer.from(toBinary(schema, message)),
    deserialize: (bytes: Buffer) => fromBinary(schema, bytes),
  };
}

export function grpcClient(url: string): grpc.Client {
  return new grpc.Client(new URL(url).host, grpc.credentials.createInsecure());
}

const healthRequest = codec(HealthCheckRequestSchema);
const healthResponse = codec(HealthCheckResponseSchema);

/** grpc.health.v1.Health/Check: the status, or the code it failed with. */
export function check(client: grpc.Client, service: string): Promise<{ status?: ServingStatus; code?: string }> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      "/grpc.health.v1.Health/Check",
      healthRequest.serialize,
      healthResponse.deserialize,
      create(HealthCheckRequestSchema, { service }),
      new grpc.Metadata(),
      { deadline: Date.now() + 5000 },
      (error: grpc.ServiceError | null, response?: HealthCheckResponse) =>
        resolve(error ? { code: codeName(error.code) } : { status: response?.status }),
    );
  });
}

/** grpc.health.v1.Health/Watch: every status told, how it ended, and a wait for the n-th status. */
export function watch(client: grpc.Client, service: string) {
  const call = client.makeServerStreamRequest(
    "/grpc.health.v1.Health/Watch",
    healthRequest.serialize,
    healthResponse.deserialize,
    create(HealthCheckRequestSchema, { service }),
  );
  const statuses: ServingStatus[] = [];
  let notify = () => {};
  call.on("data", (response: HealthCheckResponse) => {
    statuses.push(response.status);
    notify();
  });
  const ended = new Promise<string>((resolve) => {
    call.on("error", (error: grpc.ServiceError) => resolve(codeName(error.code)));
    call.on("end", () => resolve("ok"));
  });
  const received = (count: number) =>
    new Promise<void>((resolve) => {
      notify = () => statuses.length >= count && resolve();
      notify();
    });
  return { call, statuses, ended, received };
}
