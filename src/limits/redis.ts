import { Redis } from "ioredis";
import { emissionIntervalMs } from "./gcra.js";
import { createMemoryRateLimiter, validateMemoryRateLimiterOptions, type MemoryRateLimiter } from "./memory.js";
import { RATE_LIMIT_SCRIPT } from "./redis-script.js";
import {
  ADMITTED,
  checkKeyId,
  checkTokens,
  type Admission,
  type LimitsLogger,
  type RateLimiter,
  type RateLimits,
} from "./rate-limiter.js";

export interface RedisRateLimiterOptions {
  /** A redis:// or rediss:// URL (`limits.redisUrl`, REDIS_URL). Required. */
  url: string;
  /** Prefix of every Redis key this limiter writes; the rest of the name is the key id. Default `passthrough:ratelimit:`. */
  keyPrefix?: string;
  /** Longest a check waits for Redis before it is answered from memory. Default 100 ms. */
  timeoutMs?: number;
  /** While Redis is connected but failing, how often one call probes it with a PING. Default 1 s. */
  probeIntervalMs?: number;
  /** Keys the in-memory fallback tracks at most. Default 100,000. */
  maxKeys?: number;
  /** Told once when Redis stops answering (warn) and once when it answers again (info). Default: silent. */
  logger?: LimitsLogger;
  /** A clock in ms for tests, sent to the script. Default: Redis's own TIME, so that instances whose clocks differ agree. */
  now?: () => number;
}

export interface RedisRateLimiter extends RateLimiter {
  /** Which counters answer right now: Redis's, or this instance's memory while Redis fails. */
  backend(): "redis" | "memory";
  /** Resolves true when Redis first answers, false when the first attempt to reach it fails. */
  connected(): Promise<boolean>;
  /** Outages seen since start; each was logged once. */
  outages(): number;
}

/** Shared counters for several instances (SPEC section 11), with this instance's memory as the fallback. */
export function createRedisRateLimiter(options: RedisRateLimiterOptions): RedisRateLimiter {
  return new SharedRateLimiter(validateRedisRateLimiterOptions(options));
}

type ValidOptions = Required<Omit<RedisRateLimiterOptions, "now" | "logger">> & Pick<RedisRateLimiterOptions, "now" | "logger">;

export function validateRedisRateLimiterOptions(options: RedisRateLimiterOptions): ValidOptions {
  const { url } = options;
  if (typeof url !== "string" || !/^rediss?:\/\/\S+$/.test(url)) throw new TypeError("url must be a redis:// or rediss:// URL");
  return { url, ...validateRedisTuning(options) };
}

/** Every option but the URL, checked, with its default. */
export function validateRedisTuning(options: Omit<RedisRateLimiterOptions, "url">): Omit<ValidOptions, "url"> {
  const { keyPrefix = "passthrough:ratelimit:", timeoutMs = 100, probeIntervalMs = 1000, maxKeys = 100_000, logger, now } = options;
  if (typeof keyPrefix !== "string" || !/^\S{1,128}$/.test(keyPrefix)) throw new TypeError("keyPrefix must be 1 to 128 characters without spaces");
  for (const [name, value] of [["timeoutMs", timeoutMs], ["probeIntervalMs", probeIntervalMs]] as const) {
    if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`);
  }
  if (logger !== undefined && (typeof logger?.warn !== "function" || typeof logger?.info !== "function")) {
    throw new TypeError("logger must have warn and info methods");
  }
  validateMemoryRateLimiterOptions({ maxKeys, now });
  return { keyPrefix, timeoutMs, probeIntervalMs, maxKeys, logger, now };
}

type ScriptReply = [1] | [0, 1 | 2, number];

interface RedisWithScript extends Redis {
  passthroughRateLimit(key: string, op: "admit" | "charge", now: string, requestIntervalMs: number, tokenIntervalMs: number, tokens: number): Promise<ScriptReply>;
}

/**
 * Redis counters that degrade to memory. A check is one EVALSHA bounded by `timeoutMs`;
 * nothing is queued while disconnected (`enableOfflineQueue: false`), so a call never waits on
 * a Redis that is down. The first failure of an outage logs once and switches every call to
 * the in-memory fallback; the limiter switches back when ioredis reconnects (`ready`) or, when
 * the connection stayed up but stopped answering, when a periodic PING is answered again.
 */
class SharedRateLimiter implements RedisRateLimiter {
  readonly #redis: RedisWithScript;
  readonly #fallback: MemoryRateLimiter;
  readonly #options: ValidOptions;
  #up = false;
  #inOutage = false;
  #closing = false;
  #fallbacks = 0;
  #outages = 0;
  #probing = false;
  #nextProbeAt = 0;
  #settleConnected!: (connected: boolean) => void;
  readonly #connected = new Promise<boolean>((resolve) => (this.#settleConnected = resolve));

  constructor(options: ValidOptions) {
    this.#options = options;
    this.#fallback = createMemoryRateLimiter({ maxKeys: options.maxKeys, now: options.now });
    const { timeoutMs } = options;
    this.#redis = new Redis(options.url, {
      commandTimeout: timeoutMs,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      // A connection that stops answering is replaced; reconnection is retried forever, backing off up to 2 s.
      connectTimeout: Math.max(1000, 10 * timeoutMs),
      socketTimeout: Math.max(1000, 10 * timeoutMs),
      retryStrategy: (attempt) => Math.min(100 * 2 ** attempt, 2000),
      connectionName: "passthrough-limits",
    }) as RedisWithScript;
    this.#redis.defineCommand("passthroughRateLimit", { lua: RATE_LIMIT_SCRIPT, numberOfKeys: 1 });
    this.#redis.on("ready", () => this.#markUp());
    this.#redis.on("error", (error: unknown) => this.#markDown(error));
    this.#redis.on("close", () => this.#closing || this.#markDown(new Error("connection closed")));
  }

  async admit(keyId: string, limits: RateLimits): Promise<Admission> {
    checkKeyId(keyId);
    const requestInterval = emissionIntervalMs(limits.requestsPerMinute, "requestsPerMinute");
    const tokenInterval = emissionIntervalMs(limits.tokensPerMinute, "tokensPerMinute");
    if (requestInterval === 0 && tokenInterval === 0) return ADMITTED;
    if (this.#up) {
      try {
        const reply = await this.#redis.passthroughRateLimit(this.#key(keyId), "admit", this.#clock(), requestInterval, tokenInterval, 0);
        if (reply[0] === 1) return ADMITTED;
        return { allowed: false, limit: reply[1] === 1 ? "requestsPerMinute" : "tokensPerMinute", retryAfterMs: Number(reply[2]) };
      } catch (error) {
        this.#markDown(error);
      }
    } else {
      this.#probe();
    }
    this.#fallbacks++;
    return this.#fallback.admit(keyId, limits);
  }

  async charge(keyId: string, tokens: number, limits: RateLimits): Promise<void> {
    checkKeyId(keyId);
    checkTokens(tokens);
    const tokenInterval = emissionIntervalMs(limits.tokensPerMinute, "tokensPerMinute");
    if (tokenInterval === 0 || tokens === 0) return;
    if (this.#up) {
      try {
        await this.#redis.passthroughRateLimit(this.#key(keyId), "charge", this.#clock(), 0, tokenInterval, tokens);
        return;
      } catch (error) {
        this.#markDown(error);
      }
    } else {
      this.#probe();
    }
    this.#fallbacks++;
    return this.#fallback.charge(keyId, tokens, limits);
  }

  fallbacks(): number {
    return this.#fallbacks;
  }

  outages(): number {
    return this.#outages;
  }

  backend(): "redis" | "memory" {
    return this.#up ? "redis" : "memory";
  }

  connected(): Promise<boolean> {
    return this.#connected;
  }

  async close(): Promise<void> {
    this.#closing = true;
    this.#up = false;
    this.#settleConnected(false);
    await this.#fallback.close();
    if (this.#redis.status === "ready") {
      await this.#redis.quit().catch(() => this.#redis.disconnect());
    } else {
      this.#redis.disconnect();
    }
  }

  #key(keyId: string): string {
    return this.#options.keyPrefix + keyId;
  }

  #clock(): string {
    return this.#options.now === undefined ? "" : String(this.#options.now());
  }

  #markDown(error: unknown): void {
    this.#settleConnected(false);
    this.#up = false;
    if (this.#inOutage || this.#closing) return;
    this.#inOutage = true;
    this.#outages++;
    this.#options.logger?.warn(
      { error: describeError(error), keyPrefix: this.#options.keyPrefix },
      "rate limits: Redis is not answering; counting in this instance's memory until it does",
    );
  }

  #markUp(): void {
    this.#settleConnected(true);
    if (this.#closing) return;
    this.#up = true;
    if (!this.#inOutage) return;
    this.#inOutage = false;
    this.#options.logger?.info({ keyPrefix: this.#options.keyPrefix }, "rate limits: Redis answers again; counting there");
  }

  /** While connected but failing, one PING per probe interval decides when to go back to Redis. */
  #probe(): void {
    if (this.#probing || this.#closing || this.#redis.status !== "ready") return;
    const now = performance.now();
    if (now < this.#nextProbeAt) return;
    this.#probing = true;
    this.#nextProbeAt = now + this.#options.probeIntervalMs;
    this.#redis.ping().then(
      () => {
        this.#probing = false;
        this.#markUp();
      },
      () => {
        this.#probing = false;
      },
    );
  }
}

/** An ioredis error's message (an errno and address, a timeout): never the URL, which may hold a password. */
function describeError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.length > 200 ? `${message.slice(0, 200)}…` : message;
}
