import { create, type DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthCheckResponseSchema,
  HealthListResponseSchema,
  type HealthCheckResponse,
} from "../gen/grpc/health/v1/health_pb.js";

export interface HealthOptions {
  /** The services whose health is reported, besides "" (the whole server). */
  services: readonly DescService[];
  /** Aborts when shutdown begins: from then on every service is NOT_SERVING. */
  draining: AbortSignal;
}

/**
 * gRPC health (`grpc.health.v1.Health`): SERVING until shutdown begins, then NOT_SERVING; an
 * unknown service is NOT_FOUND for Check and SERVICE_UNKNOWN for Watch, as the gRPC spec says.
 * Watch ends after it has told of NOT_SERVING, so that an open watch does not hold the drain.
 */
export function createHealthService({ services, draining }: HealthOptions): ServiceImpl<typeof Health> {
  const known = new Set(["", ...services.map((service) => service.typeName)]);
  const serving = create(HealthCheckResponseSchema, { status: ServingStatus.SERVING });
  const notServing = create(HealthCheckResponseSchema, { status: ServingStatus.NOT_SERVING });
  const unknown = create(HealthCheckResponseSchema, { status: ServingStatus.SERVICE_UNKNOWN });
  const current = (): HealthCheckResponse => (draining.aborted ? notServing : serving);

  return {
    check({ service }) {
      if (!known.has(service)) throw new ConnectError(`unknown service ${JSON.stringify(service.slice(0, 200))}`, Code.NotFound);
      return current();
    },
    list() {
      const status = current();
      return create(HealthListResponseSchema, { statuses: Object.fromEntries([...known].map((name) => [name, status])) });
    },
    async *watch({ service }, context) {
      const isKnown = known.has(service);
      yield isKnown ? current() : unknown;
      if (draining.aborted) return;
      await firstAbort(draining, context.signal);
      if (isKnown && !context.signal.aborted) yield notServing;
    },
  };
}

/** Resolves when either signal aborts, and then stops listening to both. */
function firstAbort(a: AbortSignal, b: AbortSignal): Promise<void> {
  if (a.aborted || b.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      a.removeEventListener("abort", done);
      b.removeEventListener("abort", done);
      resolve();
    };
    a.addEventListener("abort", done);
    b.addEventListener("abort", done);
  });
}
