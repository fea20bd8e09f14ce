import { EPSILON_MS, emissionIntervalMs, refusal, spend, waitMs } from "./gcra.js";
import {
  ADMITTED,
  ADMITTED_PROMISE,
  WINDOW_MS,
  checkKeyId,
  checkTokens,
  type Admission,
  type RateLimiter,
  type RateLimits,
} from "./rate-limiter.js";

export interface MemoryRateLimiterOptions {
  /** Most keys tracked at once; past it the oldest tracked key's counters are forgotten. Default 100,000. */
  maxKeys?: number;
  /** The clock in milliseconds. Default: a monotonic clock (`performance.now`); tests pass their own. */
  now?: () => number;
}

/** The in-memory limiter's own extras: how many keys it tracks right now. */
export interface MemoryRateLimiter extends RateLimiter {
  /** Keys holding state; idle ones are dropped as the limiter runs. */
  trackedKeys(): number;
}

/** Counters for one instance (SPEC section 5), and the fallback of the Redis limiter. */
export function createMemoryRateLimiter(options: MemoryRateLimiterOptions = {}): MemoryRateLimiter {
  return new InMemoryRateLimiter(validateMemoryRateLimiterOptions(options));
}

export function validateMemoryRateLimiterOptions(options: MemoryRateLimiterOptions): Required<MemoryRateLimiterOptions> {
  const { maxKeys = 100_000, now = () => performance.now() } = options;
  if (!Number.isSafeInteger(maxKeys) || maxKeys < 1) throw new RangeError(`maxKeys must be a positive integer, got ${maxKeys}`);
  if (typeof now !== "function") throw new TypeError("now must be a function returning milliseconds");
  return { maxKeys, now };
}

/** One key's theoretical arrival times, updated in place; 0 (or any time past) means full budget. */
interface Entry {
  requests: number;
  tokens: number;
}

const DONE: Promise<void> = Promise.resolve();

/** How often a full sweep may run when the key cap is reached; idle keys are swept once a window anyway. */
const CAP_SWEEP_INTERVAL_MS = 1000;

/**
 * A Map from key id to its entry. No timers: idle entries (every TAT in the past) are swept
 * when a new key is tracked, at most once a window, and at most once a second while the cap is
 * reached; past the cap the oldest tracked key is dropped, so memory never grows unbounded.
 */
class InMemoryRateLimiter implements MemoryRateLimiter {
  readonly #entries = new Map<string, Entry>();
  readonly #maxKeys: number;
  readonly #now: () => number;
  #nextSweepAt = -Infinity;
  #nextCapSweepAt = -Infinity;

  constructor({ maxKeys, now }: Required<MemoryRateLimiterOptions>) {
    this.#maxKeys = maxKeys;
    this.#now = now;
  }

  admit(keyId: string, limits: RateLimits): Promise<Admission> {
    try {
      const admission = this.check(keyId, limits);
      return admission === ADMITTED ? ADMITTED_PROMISE : Promise.resolve(admission);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** `admit`, synchronously. */
  check(keyId: string, limits: RateLimits): Admission {
    checkKeyId(keyId);
    const requestInterval = emissionIntervalMs(limits.requestsPerMinute, "requestsPerMinute");
    const tokenInterval = emissionIntervalMs(limits.tokensPerMinute, "tokensPerMinute");
    if (requestInterval === 0 && tokenInterval === 0) return ADMITTED;
    const now = this.#now();
    const entry = this.#entries.get(keyId);
    const requestWait = waitMs(entry?.requests ?? 0, now, requestInterval);
    const tokenWait = waitMs(entry?.tokens ?? 0, now, tokenInterval);
    if (requestWait > EPSILON_MS || tokenWait > EPSILON_MS) return refusal(requestWait, tokenWait);
    if (requestInterval !== 0) {
      const tracked = entry ?? this.#track(keyId, now);
      tracked.requests = spend(tracked.requests, now, requestInterval, 1);
    }
    return ADMITTED;
  }

  charge(keyId: string, tokens: number, limits: RateLimits): Promise<void> {
    try {
      this.chargeNow(keyId, tokens, limits);
      return DONE;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** `charge`, synchronously. */
  chargeNow(keyId: string, tokens: number, limits: RateLimits): void {
    checkKeyId(keyId);
    checkTokens(tokens);
    const tokenInterval = emissionIntervalMs(limits.tokensPerMinute, "tokensPerMinute");
    if (tokenInterval === 0 || tokens === 0) return;
    const now = this.#now();
    const entry = this.#entries.get(keyId) ?? this.#track(keyId, now);
    entry.tokens = spend(entry.tokens, now, tokenInterval, tokens);
  }

  fallbacks(): number {
    return 0;
  }

  trackedKeys(): number {
    return this.#entries.size;
  }

  close(): Promise<void> {
    this.#entries.clear();
    return DONE;
  }

  #track(keyId: string, now: number): Entry {
    if (now >= this.#nextSweepAt) this.#sweep(now);
    if (this.#entries.size >= this.#maxKeys) {
      if (now >= this.#nextCapSweepAt) {
        this.#nextCapSweepAt = now + CAP_SWEEP_INTERVAL_MS;
        this.#sweep(now);
      }
      // Still full of keys active within the window: forget the oldest rather than grow.
      if (this.#entries.size >= this.#maxKeys) this.#entries.delete(this.#entries.keys().next().value as string);
    }
    const entry: Entry = { requests: 0, tokens: 0 };
    this.#entries.set(keyId, entry);
    return entry;
  }

  /** Drops every entry whose times are all past: it is the same as no entry. */
  #sweep(now: number): void {
    this.#nextSweepAt = now + WINDOW_MS;
    for (const [keyId, entry] of this.#entries) {
      if (entry.requests <= now && entry.tokens <= now) this.#entries.delete(keyId);
    }
  }
}
