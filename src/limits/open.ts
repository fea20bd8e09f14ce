import { createMemoryRateLimiter, type MemoryRateLimiterOptions } from "./memory.js";
import type { RateLimiter } from "./rate-limiter.js";
import { createRedisRateLimiter, validateRedisTuning, type RedisRateLimiterOptions } from "./redis.js";

export interface RateLimiterOptions extends MemoryRateLimiterOptions, Omit<RedisRateLimiterOptions, "url"> {
  /** `limits.redisUrl` (REDIS_URL overrides it when the config is loaded). Absent: counters in this instance's memory. */
  redisUrl?: string;
}

/**
 * The limiter the configuration asks for: in memory without a Redis URL, in Redis (falling back
 * to memory while it fails) with one. Every option is checked here, also those that only matter
 * with Redis (`keyPrefix`, `timeoutMs`, `probeIntervalMs`, `logger`); a bad one throws, naming it.
 */
export function createRateLimiter(options: RateLimiterOptions = {}): RateLimiter {
  const { redisUrl, ...rest } = options;
  if (redisUrl === undefined) {
    const { maxKeys, now } = validateRedisTuning(rest);
    return createMemoryRateLimiter({ maxKeys, now });
  }
  return createRedisRateLimiter({ url: redisUrl, ...rest });
}
