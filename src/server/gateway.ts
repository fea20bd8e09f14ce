import type { AddressInfo } from "node:net";
import { readFileSync } from "node:fs";
import { Code, ConnectError } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { Config } from "../config/schema.js";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { ServerReflection } from "../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1alpha } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { PassthroughService } from "../gen/smarter/prompt/v1/passthrough_pb.js";
import { createErrorBoundaryInterceptor } from "../interceptors/error-boundary.js";
import { createMetricsInterceptor } from "../interceptors/metrics.js";
import type { Logger } from "../logging/logger.js";
import { createProviderRegistry } from "../providers/registry.js";
import { createUpstreamClient } from "../providers/upstream.js";
import { createPassthroughService } from "../service/passthrough-service.js";
import { writeRestError } from "../service/rest-errors.js";
import { createTranscoder } from "../transcoding/transcoder.js";
import { createConnectUnaryHandler } from "./connect-unary.js";
import { createGrpcUnaryHandler } from "./grpc-unary.js";
import { createHealthService } from "./health.js";
import { createListener, type NodeHandler } from "./listener.js";
import { createMetricsHandler, createMetricsRegistry } from "./metrics.js";
import { setNoCacheHeaders } from "./no-cache.js";
import { createReflectionService, createReflectionV1alphaService } from "./reflection.js";

export interface GatewayOptions {
  config: Config;
  /** The environment, for provider keys; read by the registry once, at start. */
  env: NodeJS.ProcessEnv;
  logger: Logger;
}

export interface Gateway {
  /** `http://host:port` as bound (port 0 in the config picks a free one). */
  readonly url: string;
  readonly address: AddressInfo;
  /** Applies new logging settings (level, the logPrompt switch) while serving. */
  reconfigureLogging(settings: Config["logging"]): void;
  /** Graceful stop: refuse new calls, let in-flight ones finish until the deadline, then close. */
  close(): Promise<void>;
}

/** The composition root: builds every part from the configuration and serves them on one port. */
export async function startGateway({ config, env, logger }: GatewayOptions): Promise<Gateway> {
  const providers = createProviderRegistry(config.providers, env);
  const upstream = createUpstreamClient(config.upstream);
  const logging = { logPrompt: config.logging.logPrompt };
  const service = createPassthroughService({ providers, upstream, logger, logging });
  const metrics = createMetricsRegistry();
  const interceptors = [
    createMetricsInterceptor(metrics, { providers: providers.list().map((p) => p.name) }),
    createErrorBoundaryInterceptor(logger),
  ];
  /** Aborted when close() begins (readiness, health) and when in-flight calls must end (calls). */
  const draining = new AbortController();
  const shutdown = new AbortController();
  const served = [PassthroughService, Health, ServerReflection, ServerReflectionV1alpha];
  const passthrough = [{ service: PassthroughService, impl: service }];

  const transcoder = createTranscoder({
    services: passthrough,
    interceptors,
    maxBodyBytes: config.server.maxBodyBytes,
    writeError: writeRestError,
    shutdownSignal: shutdown.signal,
  });
  const fastPathOptions = { services: passthrough, interceptors, readMaxBytes: config.server.maxBodyBytes, shutdownSignal: shutdown.signal };
  const grpcUnary = createGrpcUnaryHandler(fastPathOptions);
  const connectUnary = createConnectUnaryHandler(fastPathOptions);
  const rpc = connectNodeAdapter({
    routes: (router) =>
      router
        .service(PassthroughService, service)
        .service(Health, createHealthService({ services: [PassthroughService], draining: draining.signal }))
        .service(ServerReflection, createReflectionService(served))
        .service(ServerReflectionV1alpha, createReflectionV1alphaService(served)),
    interceptors,
    readMaxBytes: config.server.maxBodyBytes,
    shutdownSignal: shutdown.signal,
    fallback: (req, res) => notFound(req, res),
  });

  let inFlight = 0;
  let idle: (() => void) | undefined;
  const serveMetrics = createMetricsHandler(metrics);
  const handler: NodeHandler = (req, res) => {
    setNoCacheHeaders(res);
    inFlight++;
    res.once("close", () => {
      if (--inFlight === 0) idle?.();
    });
    const path = req.url ?? "/";
    if (path === "/healthz" || path === "/readyz") {
      const ok = path === "/healthz" || !draining.signal.aborted;
      res.writeHead(ok ? 200 : 503, { "content-type": "application/json" });
      res.end(ok ? '{"status":"ok"}' : '{"status":"shutting down"}');
      return;
    }
    if (path === "/metrics") return serveMetrics(req, res);
    if (transcoder.handle(req, res) || grpcUnary(req, res) || connectUnary(req, res)) return;
    rpc(req, res);
  };

  const listener = createListener({
    handler,
    tls: config.server.tls && { cert: readFileSync(config.server.tls.cert), key: readFileSync(config.server.tls.key) },
    limits: config.server,
  });
  await new Promise<void>((resolve, reject) => {
    listener.server.once("error", reject);
    listener.server.listen(config.server.port, config.server.host, () => resolve());
  });
  const address = listener.server.address() as AddressInfo;
  const host = address.family === "IPv6" ? `[${address.address}]` : address.address;
  const url = `${config.server.tls ? "https" : "http"}://${host}:${address.port}`;
  logger.info({ url, providers: providers.list().map((p) => p.name) }, "passthrough listening");

  return {
    url,
    address,
    reconfigureLogging(settings) {
      logger.level = settings.level;
      logging.logPrompt = settings.logPrompt;
      logger.info({ level: settings.level, logPrompt: settings.logPrompt }, "logging reconfigured");
    },
    async close() {
      draining.abort();
      listener.stopAccepting();
      if (inFlight > 0) {
        const drained = new Promise<void>((resolve) => (idle = resolve));
        const deadline = new Promise<void>((resolve) => setTimeout(resolve, config.server.shutdownTimeoutMs).unref());
        await Promise.race([drained, deadline]);
      }
      shutdown.abort();
      listener.destroyConnections();
      await upstream.close();
      logger.info("passthrough stopped");
    },
  };
}

/** No REST route and no RPC procedure: 404 in the REST error envelope. */
function notFound(req: { method?: string; url?: string }, res: { writeHead(status: number, headers: Record<string, string>): unknown; end(body: string): unknown }): void {
  const responseHeader = new Headers();
  const path = (req.url ?? "/").split("?")[0].slice(0, 200);
  const error = new ConnectError(`no route for ${req.method} ${path}`, Code.NotFound);
  const { status, headers, body } = writeRestError(error, { responseHeader });
  res.writeHead(status, { ...Object.fromEntries(responseHeader), ...headers });
  res.end(body);
}
