import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { z } from "zod";

/**
 * The configuration file's schema: every key optional, every default here, unknown keys an
 * error. Each option's default is written next to it; README.md documents the same table.
 */
const providerName = z
  .string()
  .min(1)
  .regex(/^[a-z0-9_]+$/, "lower-case letters, digits and '_' only (names are normalized: 'My-Provider' → 'my_provider')");

export const providerSchema = z.strictObject({
  name: providerName,
  /** Where `POST {baseUrl}/chat/completions` goes. Only ever from configuration (no SSRF). Required unless built in. */
  baseUrl: z.url({ protocol: /^https?$/ }).optional(),
  /** Name of the environment variable that holds the provider's API key; none: no key sent. */
  apiKeyEnv: z.string().min(1).optional(),
  /** `google`: an OAuth token from google-auth-library's application default credentials. */
  credential: z.enum(["apiKey", "google", "none"]).optional(),
  /** Extra headers sent to the provider on every call. */
  headers: z.record(z.string(), z.string()).optional(),
  /** Bounds the whole call, retries included. Default `upstream.timeoutMs`. */
  timeoutMs: z.number().int().positive().optional(),
  /** Retries on connection failure, 429 and 502/503/504 before any byte was relayed. Default `upstream.retries`. */
  retries: z.number().int().min(0).max(10).optional(),
  /** Default: true for configured providers; built-ins are enabled when their key is set. */
  enabled: z.boolean().optional(),
});

const tlsSchema = z.strictObject({ cert: z.string().min(1), key: z.string().min(1) });

export const configSchema = z.strictObject({
  server: z
    .strictObject({
      host: z.string().min(1).default("127.0.0.1"),
      /**
       * Names this instance in logs, metrics, signals' `source` and its journal spool's file.
       * Default `<hostname>-<port>`; with port 0, `<hostname>-<8 random hex digits>` (see defaultInstanceId).
       */
      instanceId: z
        .string()
        .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, "letters, digits, '.', '_' and '-', at most 64")
        .optional(),
      port: z.number().int().min(0).max(65535).default(8080),
      tls: tlsSchema.optional(),
      /** Largest request body accepted. Default 8 MiB. */
      maxBodyBytes: z.number().int().positive().default(8 * 1024 * 1024),
      /** How long SIGTERM waits for in-flight calls. Default 30 s. */
      shutdownTimeoutMs: z.number().int().positive().default(30_000),
      /**
       * After SIGTERM, how long the instance keeps accepting and serving with `/readyz` at 503,
       * so that a load balancer's health checks take it out before its connections close.
       * Default 0 (alone); behind a balancer, longer than its checks take to see the 503.
       */
      drainDelayMs: z.number().int().min(0).max(300_000).default(0),
      /** Serve unary gRPC and Connect calls on the fast paths (src/server/fast-paths/) rather than connect-node. Default on. */
      fastPaths: z.boolean().default(true),
      /** Serve the browser playground at `/` (built into dist/web by `npm run build`); false: `/` is a 404. Default on. */
      playground: z.boolean().default(true),
      /** Most bytes of a stream's events that one call's record keeps for the journal; past it the record is marked truncated. Default 32 MiB. */
      maxRecordedBytes: z.number().int().positive().default(32 * 1024 * 1024),
      /**
       * A new connection's first bytes (request line, HTTP/2 preface, TLS ClientHello) must
       * arrive within this, and a TLS handshake complete within as long again. Default 10 s.
       */
      firstBytesTimeoutMs: z.number().int().positive().default(10_000),
      /**
       * An HTTP/1.1 request's headers, and a new HTTP/2 connection's first request, must be
       * complete within this. Default 20 s (Node's own is 60 s; a real client needs one round trip).
       */
      headersTimeoutMs: z.number().int().positive().default(20_000),
      /**
       * A whole request, body included, must have arrived within this; the response is not
       * bounded by it. Default 120 s: an 8 MiB body over a 1 Mbit/s link takes about 70 s.
       */
      requestTimeoutMs: z.number().int().positive().default(120_000),
      /**
       * An idle HTTP/1.1 keep-alive connection is closed after this. Default 65 s: longer than
       * a load balancer's usual 60 s idle timeout, so that the balancer closes first and never
       * sends a request on a connection the gateway is closing.
       */
      keepAliveTimeoutMs: z.number().int().positive().default(65_000),
      /**
       * An HTTP/2 connection with no open stream is sent GOAWAY after this. Default 5 min:
       * longer than a balancer's idle timeout, and than the pause between a gRPC channel's calls.
       */
      http2IdleTimeoutMs: z.number().int().positive().default(300_000),
      /** Concurrent streams one HTTP/2 connection may open; more are refused. Default 100 (Envoy's edge setting). */
      http2MaxConcurrentStreams: z.number().int().positive().max(2 ** 31 - 1).default(100),
      /** Largest request header block, HTTP/1.1 (431 past it) and HTTP/2 alike. Default 16 KiB (Node's HTTP/1.1 limit). */
      maxHeaderBytes: z.number().int().min(1024).max(1024 * 1024).default(16 * 1024),
      /** Open connections at once; past it a new one is closed at once. Default 4096; keep it below the open-file limit. */
      maxConnections: z.number().int().positive().default(4096),
    })
    .refine((server) => server.headersTimeoutMs <= server.requestTimeoutMs, {
      message: "must not be longer than requestTimeoutMs",
      path: ["headersTimeoutMs"],
    })
    .transform((server) => ({ ...server, instanceId: server.instanceId ?? defaultInstanceId(server.port) }))
    .prefault({}),
  upstream: z
    .strictObject({
      /** Each provider's timeout unless it sets its own: it bounds the whole call, retries included. Default 120 s. */
      timeoutMs: z.number().int().positive().default(120_000),
      /** Each provider's retries unless it sets its own. Default 2. */
      retries: z.number().int().min(0).max(10).default(2),
      /** Longest `Retry-After` waited for; a longer one is relayed to the caller. Default 10 s. */
      retryAfterCapMs: z.number().int().min(0).default(10_000),
      /** First backoff step; doubles each retry, with full jitter. Default 200 ms. */
      backoffBaseMs: z.number().int().min(0).default(200),
      /** Connections per provider, kept alive; each open stream holds one. Default 1024. */
      connectionsPerProvider: z.number().int().positive().default(1024),
      /** Largest answer read whole (unary, or JSON to a stream request); past it: UNAVAILABLE / 502. Default 32 MiB. */
      maxAnswerBytes: z.number().int().positive().default(32 * 1024 * 1024),
      /** Largest SSE event read (up to its blank line); past it the stream fails UNAVAILABLE / 502. Default 8 MiB. */
      maxEventBytes: z.number().int().positive().default(8 * 1024 * 1024),
    })
    .prefault({}),
  database: z
    .strictObject({
      /** `sqlite:PATH` (relative or absolute) or `postgres://…`; DATABASE_URL overrides. Default `sqlite:./data/passthrough.db`. */
      url: z.string().min(1).default("sqlite:./data/passthrough.db"),
      /** PostgreSQL only: the schema that holds the tables, created when missing. Default `public`. */
      schema: z
        .string()
        .regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, "a plain identifier: letters, digits and '_', at most 63")
        .optional(),
    })
    .prefault({}),
  providers: z.array(providerSchema).default([]),
  auth: z
    .strictObject({
      /** How long a verified key is trusted before the store is asked again; a revoked, rotated or expired key is refused on every instance within it. Default 5 s. */
      cacheTtlMs: z.number().int().positive().default(5000),
      google: z
        .strictObject({
          /** Audiences (OAuth client ids) a Google ID token may be issued to; at least one. */
          audiences: z.array(z.string().min(1)).min(1),
          /** Verifying keys for offline use: a JWKS, a `{kid: PEM}` map, or PEM blocks. Default: fetched from Google. */
          certsFile: z.string().min(1).optional(),
          /** Admit only these verified emails (and the accounts of `domains`). Default: every account. */
          emails: z.array(z.email()).min(1).optional(),
          /** Admit only these Google Workspace domains, by the token's `hd` claim. Default: every account. */
          domains: z.array(z.string().regex(/^[^@\s]+$/, "a domain, without @")).min(1).optional(),
        })
        .optional(),
      cors: z.strictObject({ origins: z.array(z.string().min(1)).default([]) }).prefault({}),
    })
    .prefault({}),
  limits: z
    .strictObject({
      /** Requests per minute per key, unless the key has its own. Default: unlimited. */
      requestsPerMinute: z.number().int().positive().optional(),
      /** Tokens per minute per key, counted from the provider's reported usage, unless the key has its own. Default: unlimited. */
      tokensPerMinute: z.number().int().positive().optional(),
      /** Redis holding the counters that several instances share (REDIS_URL overrides). Default: none, counters in memory. */
      redisUrl: z.string().regex(/^rediss?:\/\/\S+$/, "a redis:// or rediss:// URL").optional(),
    })
    .prefault({}),
  transcoding: z
    .strictObject({
      /** Refuse (400) a REST query parameter that binds no field, instead of ignoring it as grpc-gateway does. Default false. */
      rejectUnknownQueryParameters: z.boolean().default(false),
    })
    .prefault({}),
  journal: z
    .strictObject({
      /** Entries older than this many days are deleted in the background, in small batches. Default: kept forever. */
      retentionDays: z.number().positive().optional(),
      /** Entries held in memory waiting for the database; past it they go to the spool file. Default 10,000. */
      queueSize: z.number().int().positive().default(10_000),
      /** Most entries written in one transaction. Default 200. */
      batchSize: z.number().int().positive().default(200),
      /** The folder of the spool files (entries the database could not take yet). Default `./data/journal-spool`. */
      spoolDir: z.string().min(1).default("./data/journal-spool"),
    })
    .prefault({}),
  signals: z
    .strictObject({
      /** Put request and response bodies in `data`. Default on. */
      includeBodies: z.boolean().default(true),
      /** Events each sink may hold waiting for delivery; past it new events are dropped and counted. Default 10,000. */
      queueSize: z.number().int().positive().default(10_000),
      /** Most events in one delivery. Default 100. */
      batchSize: z.number().int().positive().default(100),
      /** How long shutdown waits for the sinks to deliver what they hold. Default 5 s. */
      flushTimeoutMs: z.number().int().positive().default(5000),
      /** The folder of the write-ahead logs (events of answered calls not yet delivered, kept if the process dies). Default `./data/signal-spool`. */
      spoolDir: z.string().min(1).default("./data/signal-spool"),
      sinks: z
        .array(
          z.discriminatedUnion("type", [
            z.strictObject({ type: z.literal("log"), path: z.string().min(1).optional() }),
            z.strictObject({
              type: z.literal("webhook"),
              url: z.url({ protocol: /^https?$/ }),
              /** Signs every batch: `x-passthrough-signature` and Standard Webhooks (a `whsec_` base64 secret is used as its bytes). */
              secret: z.string().min(1),
              /** One delivery's bound. Default 10 s. */
              timeoutMs: z.number().int().positive().default(10_000),
            }),
            z.strictObject({
              type: z.literal("nats"),
              url: z.string().regex(/^(nats|tls):\/\/[^\s/]+$/, "a nats://host:port URL"),
              subject: z.string().regex(/^[^\s*>]+$/, "a subject without spaces or wildcards"),
            }),
            z.strictObject({
              type: z.literal("redis"),
              url: z.string().regex(/^rediss?:\/\/\S+$/, "a redis:// or rediss:// URL"),
              stream: z.string().min(1),
              /** XADD's approximate MAXLEN. Default 100,000. */
              maxLen: z.number().int().positive().default(100_000),
            }),
            z.strictObject({
              type: z.literal("module"),
              /** A module whose default export (or `createSink`) is a SinkFactory; relative to the working directory. */
              path: z.string().min(1),
              options: z.record(z.string(), z.unknown()).default({}),
            }),
          ]),
        )
        .default([{ type: "log" }]),
    })
    .prefault({}),
  telemetry: z
    .strictObject({
      /**
       * An OpenTelemetry collector's OTLP/HTTP base URL (`http://127.0.0.1:4318`): spans of every
       * call are exported to `<it>/v1/traces`. Default: none, no span is made.
       */
      otlpEndpoint: z.url({ protocol: /^https?$/ }).optional(),
    })
    .prefault({}),
  logging: z
    .strictObject({
      level: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
      /** The seed's `should_log` switch: log prompt bodies. Default off. */
      logPrompt: z.boolean().default(false),
    })
    .prefault({}),
});

/**
 * `<hostname>-<port>`: unique among instances sharing a folder on one host, and the same after
 * a restart, so that a crashed instance replays its own journal spool. Port 0 picks a free port
 * only when listening, after the name is needed: such an instance gets a random suffix, so that
 * two never share a spool (neither name survives a restart).
 */
function defaultInstanceId(port: number): string {
  return `${hostname()}-${port === 0 ? randomBytes(4).toString("hex") : port}`;
}

export type ConfigInput = z.input<typeof configSchema>;
export type Config = z.output<typeof configSchema>;
export type SinkConfig = Config["signals"]["sinks"][number];
export type ProviderConfig = z.output<typeof providerSchema>;
