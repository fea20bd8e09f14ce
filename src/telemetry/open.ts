import type { TracerProvider } from "@opentelemetry/api";
import type { Config } from "../config/schema.js";
import { createCallTracing, type CallTracing } from "./call-tracing.js";

export interface Tracing {
  /** The calls' spans; undefined when tracing is off. */
  readonly calls: CallTracing | undefined;
  /** Exports the spans still held (for at most 5 s) and stops the provider the gateway made; a given provider is the caller's to stop. */
  close(): Promise<void>;
}

/**
 * Tracing is on when a tracer provider is given (tests hand theirs in, with an in-memory
 * exporter) or `telemetry.otlpEndpoint` is configured: then the gateway makes a provider of its
 * own, exporting in batches over OTLP/HTTP (JSON) to `<otlpEndpoint>/v1/traces`. Off, the SDK is
 * not even loaded and no span is made. Nothing is registered globally in either case.
 */
export async function openTracing(config: Config["telemetry"], given?: TracerProvider, instance?: string): Promise<Tracing> {
  if (given !== undefined) return { calls: createCallTracing(given), close: async () => {} };
  if (config.otlpEndpoint === undefined) return { calls: undefined, close: async () => {} };
  const [{ BasicTracerProvider, BatchSpanProcessor }, { OTLPTraceExporter }, { defaultResource, detectResources, envDetector, resourceFromAttributes }] = await Promise.all([
    import("@opentelemetry/sdk-trace-base"),
    import("@opentelemetry/exporter-trace-otlp-http"),
    import("@opentelemetry/resources"),
  ]);
  const exporter = new OTLPTraceExporter({ url: tracesUrl(config.otlpEndpoint) });
  // The spans name the service and this instance; OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, read as every SDK reads them, win.
  const resource = defaultResource()
    .merge(resourceFromAttributes({ "service.name": "passthrough", ...(instance !== undefined && { "service.instance.id": instance }) }))
    .merge(detectResources({ detectors: [envDetector] }));
  const provider = new BasicTracerProvider({ resource, spanProcessors: [new BatchSpanProcessor(exporter)] });
  return {
    calls: createCallTracing(provider),
    async close() {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([provider.shutdown().catch(() => undefined), new Promise((resolve) => (timer = setTimeout(resolve, FLUSH_TIMEOUT_MS)))]);
      clearTimeout(timer);
    },
  };
}

const FLUSH_TIMEOUT_MS = 5000;

/** As OTEL_EXPORTER_OTLP_ENDPOINT is read: the collector's base URL, to which the signal's path is added. */
export function tracesUrl(endpoint: string): string {
  const url = new URL(endpoint);
  if (!url.pathname.endsWith("/v1/traces")) url.pathname = `${url.pathname.replace(/\/+$/, "")}/v1/traces`;
  return url.href;
}
