import { createServiceImplSpec, type Interceptor, type MethodImplSpec } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import { validateUniversalHandlerOptions } from "../../connect-internals.js";
import type { TranscodedService } from "../../transcoding/transcoder.js";

/** A service and its implementation, as the transcoder takes them. */
export type ServedService = TranscodedService;

export type UnarySpec = Extract<MethodImplSpec, { kind: "unary" }>;

/** What a unary fast path (connect-unary.ts, grpc-unary.ts) is built from. */
export interface UnaryDoorOptions {
  services: ServedService[];
  interceptors: Interceptor[];
  /** Largest request message in bytes. */
  readMaxBytes: number;
  shutdownSignal?: AbortSignal;
}

/** connectNodeAdapter's handler options for these: gzip and brotli both ways, the same limits and interceptors. */
export function unaryHandlerOptions(options: UnaryDoorOptions): ReturnType<typeof validateUniversalHandlerOptions> {
  return validateUniversalHandlerOptions({
    acceptCompression: [compressionGzip, compressionBrotli],
    readMaxBytes: options.readMaxBytes,
    interceptors: options.interceptors,
    shutdownSignal: options.shutdownSignal,
  });
}

/** The unary methods of these services by request path, `/package.Service/Method`. */
export function unaryMethodsByPath(services: ServedService[]): Map<string, UnarySpec> {
  const methods = new Map<string, UnarySpec>();
  for (const { service, impl } of services) {
    for (const spec of Object.values(createServiceImplSpec(service, impl).methods)) {
      if (spec.kind === "unary") methods.set(`/${service.typeName}/${spec.method.name}`, spec);
    }
  }
  return methods;
}

/** A request header's first value, or null as fetch Headers would say. */
export function headerValue(value: string | string[] | undefined): string | null {
  return value === undefined ? null : Array.isArray(value) ? value[0] : value;
}
