import type { AddressInfo } from "node:net";
import { readFileSync } from "node:fs";
import { setMaxListeners } from "node:events";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { TracerProvider } from "@opentelemetry/api";
import { Gauge } from "prom-client";
import { createEntry } from "../call/entry.js";
import { createHeaderStage, type HeaderCheck } from "../call/header-stage.js";
import { createCallTracker, type CallListener } from "../call/record.js";
import type { Config } from "../config/schema.js";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import { ServerReflection } from "../gen/grpc/reflection/v1/reflection_pb.js";
import { ServerReflection as ServerReflectionV1alpha } from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { AdminService } from "../gen/smarter/prompt/v1/admin_pb.js";
import { JournalService } from "../gen/smarter/prompt/v1/journal_pb.js";
import { PassthroughService } from "../gen/smarter/prompt/v1/passthrough_pb.js";
import { createApiKeyVerifier } from "../auth/api-key-verifier.js";
import { newApiKey } from "../auth/api-keys.js";
import { createGoogleIdTokenVerifier } from "../auth/google-id-token.js";
import { createKeyCache } from "../auth/key-cache.js";
import type { Secret } from "../config/secret.js";
import { createAuthInterceptor } from "../interceptors/auth.js";
import { createErrorBoundaryInterceptor } from "../interceptors/error-boundary.js";
import { createSignalInterceptor } from "../interceptors/signals.js";
import { openJournal } from "../journal/open.js";
import { openSignals, registerSignalMetrics } from "../signals/open.js";
import type { SignalSink } from "../signals/sink.js";
import { createRateLimiter } from "../limits/open.js";
import { openStore } from "../store/open.js";
import type { Store } from "../store/store.js";
import type { Logger } from "../logging/logger.js";
import { createProviderRegistry } from "../providers/registry.js";
import { createUpstreamClient } from "../providers/upstream.js";
import { errorEnvelope, writeRestError } from "../rest/errors.js";
import { createPassthroughRest } from "../rest/passthrough-rest.js";
import { createAdminService } from "../service/admin-service.js";
import { createJournalService } from "../service/journal-service.js";
import { createPassthroughCalls } from "../service/passthrough-call.js";
import { createPassthroughService } from "../service/passthrough-service.js";
import { createProviderList } from "../service/provider-list.js";
import { openTracing } from "../telemetry/open.js";
import { createTranscoder } from "../transcoding/transcoder.js";
import { createCallMetrics } from "./call-metrics.js";
import { createConnectDoor } from "./connect-door.js";
import { createCors } from "./cors.js";
import { createDrain } from "./drain.js";
import { createConnectUnaryDoor } from "./fast-paths/connect-unary.js";
import { createGrpcUnaryDoor } from "./fast-paths/grpc-unary.js";
import { createHealthService } from "./health.js";
import { createListener, type NodeHandler } from "./listener.js";
import { createMetricsHandler, createMetricsRegistry, registerScraped } from "./metrics.js";
import { createReadiness, createReadinessHandler } from "./readiness.js";
import { createRefusalMetrics } from "./refusal-metrics.js";
import { loadPlayground, PLAYGROUND_ROOT } from "./playground.js";
import { createReflectionService, createReflectionV1alphaService } from "./reflection.js";

export interface GatewayOptions {
  config: Config;
  /**
   * Authenticate every call (SPEC section 5). Default true; only tests that are not about
   * authentication turn it off. The configuration file cannot.
   */
  authenticate?: boolean;
  /** Journal every call (SPEC section 7). Default true; only the benchmark's "all off" gateway turns it off. */
  journal?: boolean;
  /** Sinks besides the configured ones (tests' own). */
  signalSinks?: readonly SignalSink[];
  /** Traces calls through this provider (tests' own, with an in-memory exporter) rather than as `telemetry` configures. */
  tracerProvider?: TracerProvider;
  /** Told of the key created on the first start with an empty key store, to show it once. */
  onFirstKey?(key: Secret): void;
  /** The environment, for provider keys; read by the registry once, at start. */
  env: NodeJS.ProcessEnv;
  logger: Logger;
  /** What later parts (authentication, the journal, signals) and tests hook into every call. */
  calls?: {
    /** Run on a call's headers, in order, before its body is read; one that throws refuses the call. */
    headerChecks?: readonly HeaderCheck[];
    /** Told of every call once it has ended. */
    onCallEnd?: readonly CallListener[];
    /** Run around every call after the gateway's own, on every door. */
    interceptors?: readonly Interceptor[];
  };
}

export interface Gateway {
  /** `http://host:port` as bound (port 0 in the config picks a free one). */
  readonly url: string;
  readonly address: AddressInfo;
  /** Applies new logging settings (level, the logPrompt switch) while serving. */
  reconfigureLogging(settings: Config["logging"]): void;
  /**
   * Graceful stop (src/server/drain.ts): readiness turns 503 at once; after `server.drainDelayMs`
   * of serving on, new calls are refused and in-flight ones may finish until
   * `server.shutdownTimeoutMs`; the rest are cancelled, then the journal, the sinks and the spans flushed.
   */
  close(): Promise<void>;
}

/** The composition root: builds every part from the configuration and serves them on one port. */
export async function startGateway({ config, env, logger, calls: hooks = {}, authenticate = true, journal: journaling = true, signalSinks, tracerProvider, onFirstKey }: GatewayOptions): Promise<Gateway> {
  const providers = createProviderRegistry(config.providers, env, config.upstream);
  const store = await openStore(config.database.url, { schema: config.database.schema });
  const keyCache = createKeyCache({ store, ttlMs: config.auth.cacheTtlMs, onError: (error, what) => logger.warn({ err: error }, `${what} failed`) });
  const limiter = createRateLimiter({ redisUrl: config.limits.redisUrl, logger });
  const metrics = createMetricsRegistry();
  const auth = authenticate
    ? createAuthInterceptor({
        verifiers: [createApiKeyVerifier({ cache: keyCache }), ...(config.auth.google ? [createGoogleIdTokenVerifier(config.auth.google)] : [])],
        limiter,
        limits: config.limits,
        logger,
        onRefusal: createRefusalMetrics(metrics),
        adminServices: [AdminService],
      })
    : undefined;
  const instance = config.server.instanceId;
  const logging = { logPrompt: config.logging.logPrompt, logPromptSince: 0 };
  const dispatcher = await openSignals(config.signals, { logger, logging }, instance, signalSinks);
  // Without a sink no event is built, and the interceptor is left out of every call's chain.
  const signals = dispatcher.stats().length > 0 ? createSignalInterceptor({ dispatcher, includeBodies: config.signals.includeBodies, source: `passthrough/${instance}` }) : undefined;
  const upstream = createUpstreamClient(config.upstream);
  const reconfigureLogging = (settings: Config["logging"], by?: string) => {
    logger.level = settings.level;
    if (settings.logPrompt && !logging.logPrompt) logging.logPromptSince = Date.now();
    logging.logPrompt = settings.logPrompt;
    logger.info({ level: settings.level, logPrompt: settings.logPrompt, ...(by && { by }) }, "logging reconfigured");
  };
  const admin = createAdminService({ logging: () => ({ level: logger.level as Config["logging"]["level"], logPrompt: logging.logPrompt }), reconfigureLogging });
  const tracing = await openTracing(config.telemetry, tracerProvider, instance);
  const calls = createPassthroughCalls({ providers, upstream, logger, logging, traceContext: tracing.calls });
  const providerList = createProviderList(providers);
  const service = { ...createPassthroughService(calls), ...providerList };
  const journalReads = createJournalService(store);
  // An info metric, as node_exporter's node_uname_info: joins any series to the instance that
  // reported it. The label is not `instance`, which Prometheus sets to the scraped address.
  new Gauge({ name: "passthrough_instance_info", help: "This instance's server.instanceId.", labelNames: ["instance_id"], registers: [metrics] }).set({ instance_id: instance }, 1);
  registerScraped(metrics, "gauge", "passthrough_rate_limit_fallback_calls", "Rate-limit checks answered from this instance's memory because Redis failed, since start.", () => limiter.fallbacks());
  const tracker = createCallTracker({
    maxRecordedBytes: config.server.maxRecordedBytes,
    onListenerError: (error, call) => logger.error({ err: error, journalKey: call.journalKey }, "a call-end listener failed"),
  });
  tracker.onCallEnd(createCallMetrics(metrics, { providers: providers.list().map((p) => p.name) }));
  registerSignalMetrics(metrics, dispatcher);
  const journal = journaling ? openJournal(config.journal, { store, logger, instance, metrics }) : undefined;
  if (journal) tracker.onCallEnd(journal.onCallEnd);
  if (auth) tracker.onCallEnd(auth.onCallEnd);
  if (signals) {
    tracker.onUpstreamStart(signals.onUpstreamStart);
    tracker.onCallEnd(signals.onCallEnd);
  }
  if (tracing.calls) tracker.onCallEnd(tracing.calls.onCallEnd);
  for (const listener of hooks.onCallEnd ?? []) tracker.onCallEnd(listener);
  const headerStage = createHeaderStage([...(auth ? [auth.headerCheck] : []), ...(hooks.headerChecks ?? [])], (error, call) =>
    logger.error({ err: error, journalKey: call.journalKey }, "a header check failed"),
  );
  const interceptors = [createErrorBoundaryInterceptor(logger), ...(auth ? [auth.interceptor] : []), ...(signals ? [signals.interceptor] : []), ...(hooks.interceptors ?? [])];
  const drain = createDrain();
  // connect-node links each call's signal to it for the call's length: many calls at once are no leak.
  setMaxListeners(0, drain.cancelled);
  const readiness = createReadiness({ store, sinks: () => dispatcher.stats(), journal: journal && (() => journal.writer.stats()), draining: drain.draining });
  const served = [PassthroughService, JournalService, AdminService, Health, ServerReflection, ServerReflectionV1alpha];
  // The fast paths serve Passthrough only; JournalService goes through connect-node and the transcoder.
  const passthrough = [{ service: PassthroughService, impl: service }];
  const readMaxBytes = config.server.maxBodyBytes;

  const transcoder = createTranscoder({
    services: [
      { service: PassthroughService, impl: { ...createPassthroughRest(calls), ...providerList } },
      { service: JournalService, impl: journalReads },
      { service: AdminService, impl: admin },
    ],
    interceptors,
    maxBodyBytes: readMaxBytes,
    writeError: writeRestError,
    shutdownSignal: drain.cancelled,
    // A journal page with no entries is `"entries": []`, an OK entry has `"grpcCode": 0`.
    emitDefaults: true,
    rejectUnknownQueryParameters: config.transcoding.rejectUnknownQueryParameters,
  });
  const fastPathOptions = { services: passthrough, interceptors, readMaxBytes, shutdownSignal: drain.cancelled };
  const fastPaths = config.server.fastPaths ? [createGrpcUnaryDoor(fastPathOptions), createConnectUnaryDoor(fastPathOptions)] : [];
  const rpc = createConnectDoor({
    routes: (router) =>
      router
        .service(PassthroughService, service)
        .service(JournalService, journalReads)
        .service(AdminService, admin)
        .service(Health, createHealthService({ services: [PassthroughService, JournalService, AdminService], draining: drain.draining, ready: readiness.ready }))
        .service(ServerReflection, createReflectionService(served))
        .service(ServerReflectionV1alpha, createReflectionV1alphaService(served)),
    interceptors,
    readMaxBytes,
    shutdownSignal: drain.cancelled,
    onError: (error, procedure) => logger.error({ err: error, procedure }, "a handler failed outside its call"),
  });
  const entry = createEntry({ doors: [transcoder, ...fastPaths, rpc], tracker, headerStage, services: new Set([PassthroughService, JournalService, AdminService]) });

  const cors = createCors(config.auth.cors);
  const playground = config.server.playground ? loadPlayground() : undefined;
  if (config.server.playground && playground === undefined) logger.warn({ root: PLAYGROUND_ROOT }, "the playground is not built (npm run build), or could not be read: / is a 404");
  const serveMetrics = createMetricsHandler(metrics);
  const serveReadiness = createReadinessHandler(readiness);
  // Every response is never cached (SPEC section 9): the response classes set the headers as they are made.
  const handler: NodeHandler = (req, res) => {
    drain.track(res);
    const path = req.url ?? "/";
    if (path === "/healthz") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end('{"status":"ok"}');
      return;
    }
    if (path === "/readyz") return serveReadiness(req, res);
    if (path === "/metrics") return serveMetrics(req, res);
    if (playground?.handle(req, res)) return;
    if (cors.handle(req, res) || drain.refuse(req, res)) return;
    if (!entry(req, res)) notFound(req, res);
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
  if (authenticate && (await store.countKeys()) === 0) onFirstKey?.(await createFirstKey(store));
  logger.info({ url, providers: providers.list().map((p) => p.name) }, "passthrough listening");

  return {
    url,
    address,
    reconfigureLogging,
    async close() {
      if (config.server.drainDelayMs > 0) logger.info({ drainDelayMs: config.server.drainDelayMs }, "draining: not ready, still serving");
      await drain.run(listener, config.server.shutdownTimeoutMs, config.server.drainDelayMs);
      await upstream.close();
      await Promise.all([journal?.close(JOURNAL_FLUSH_TIMEOUT_MS), dispatcher.close(config.signals.flushTimeoutMs), tracing.close()]);
      await keyCache.close();
      await limiter.close();
      await store.close();
      logger.info("passthrough stopped");
    },
  };
}

/** How long shutdown waits for the journal's database; what it has not taken by then is spooled. */
const JOURNAL_FLUSH_TIMEOUT_MS = 5000;

/** No REST route and no RPC procedure: 404 in the REST error envelope. */
function notFound(req: { method?: string; url?: string }, res: { writeHead(status: number, headers: Record<string, string>): unknown; end(body: string): unknown }): void {
  const path = (req.url ?? "/").split("?")[0].slice(0, 200);
  const error = new ConnectError(`no route for ${req.method} ${path}`, Code.NotFound);
  res.writeHead(404, { "content-type": "application/json" });
  res.end(JSON.stringify(errorEnvelope(error, undefined)));
}

/** The key of a first start: one, so that the README's run command is enough to make a first call. */
async function createFirstKey(store: Store): Promise<Secret> {
  const material = newApiKey();
  await store.createKey({ id: material.id, digest: material.digest, name: "first key" });
  return material.key;
}
