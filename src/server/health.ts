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
  /** Whether the gateway is ready (readiness.ts: not draining, its store reachable). Default: until draining. */
  ready?: () => Promise<boolean>;
  /** How often an open Watch asks `ready` again. Default 1 s. */
  watchIntervalMs?: number;
}

/**
 * gRPC health (`grpc.health.v1.Health`): SERVING while the gateway is ready (what `GET /readyz`
 * answers 200 to), else NOT_SERVING, for "" and every service alike: they share the store and
 * the drain. An unknown service is NOT_FOUND for Check and SERVICE_UNKNOWN for Watch, as the
 * gRPC spec says. Watch tells each change; it ends after it has told of the drain, so that an
 * open watch does not hold it.
 */
export function createHealthService({ services, draining, ready, watchIntervalMs = 1000 }: HealthOptions): ServiceImpl<typeof Health> {
  const known = new Set(["", ...services.map((service) => service.typeName)]);
  const serving = create(HealthCheckResponseSchema, { status: ServingStatus.SERVING });
  const notServing = create(HealthCheckResponseSchema, { status: ServingStatus.NOT_SERVING });
  const unknown = create(HealthCheckResponseSchema, { status: ServingStatus.SERVICE_UNKNOWN });
  const current = async (): Promise<HealthCheckResponse> => {
    if (draining.aborted) return notServing;
    return (ready === undefined || (await ready())) && !draining.aborted ? serving : notServing;
  };

  return {
    async check({ service }) {
      if (!known.has(service)) throw new ConnectError(`unknown service ${JSON.stringify(service.slice(0, 200))}`, Code.NotFound);
      return current();
    },
    async list() {
      const status = await current();
      return create(HealthListResponseSchema, { statuses: Object.fromEntries([...known].map((name) => [name, status])) });
    },
    async *watch({ service }, context) {
      if (!known.has(service)) {
        yield unknown;
        await firstAbort(draining, context.signal);
        return;
      }
      let told = await current();
      yield told;
      while (!draining.aborted && !context.signal.aborted) {
        await firstAbort(draining, context.signal, ready === undefined ? undefined : watchIntervalMs);
        if (context.signal.aborted) return;
        const now = await current();
        if (now !== told) yield (told = now);
      }
    },
  };
}

/** Resolves when either signal aborts (or after `ms`, when given), and then stops listening to both. */
function firstAbort(a: AbortSignal, b: AbortSignal, ms?: number): Promise<void> {
  if (a.aborted || b.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = ms === undefined ? undefined : setTimeout(() => done(), ms);
    const done = () => {
      clearTimeout(timer);
      a.removeEventListener("abort", done);
      b.removeEventListener("abort", done);
      resolve();
    };
    a.addEventListener("abort", done);
    b.addEventListener("abort", done);
  });
}
