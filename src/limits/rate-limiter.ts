/**
 * The rate-limit extension point (SPEC section 5): per-key requests and tokens per minute,
 * counted in memory for one instance (`memory.ts`) or in Redis for several (`redis.ts`).
 *
 * The algorithm is GCRA (the generic cell rate algorithm, a token bucket kept as one
 * timestamp per key and limit), chosen because its state is a single number that Redis can
 * update atomically, it refills continuously instead of at window edges, and it gives an
 * exact Retry-After. Cost model: in memory, `admit` is one Map lookup and a few float
 * operations, and an admitted call returns a shared, already-resolved promise; in Redis it is
 * one EVALSHA round trip, bounded by the limiter's timeout.
 */

/** A key's effective limits; each absent one is unlimited. Positive numbers, per minute. */
export interface RateLimits {
  readonly requestsPerMinute?: number;
  readonly tokensPerMinute?: number;
}

/** Which limit refused a request. */
export type LimitName = keyof RateLimits;

export interface Admitted {
  readonly allowed: true;
}

export interface Refused {
  readonly allowed: false;
  /** The limit that refused; when both did, the one that frees up last. */
  readonly limit: LimitName;
  /** Whole milliseconds until the same request would be admitted, at least 1. */
  readonly retryAfterMs: number;
}

export type Admission = Admitted | Refused;

export interface RateLimiter {
  /**
   * Checks one request for `keyId` against `limits` and, when it is admitted, counts it.
   * A refused request is not counted. Resolves, never rejects for a backend failure (see
   * `fallbacks`); rejects with a RangeError for a limit that is not a positive number.
   */
  admit(keyId: string, limits: RateLimits): Promise<Admission>;
  /**
   * Counts the tokens a call used, from the provider's reported usage, after the answer. Past
   * the token budget the key's next request is refused until enough of the budget has refilled.
   * A no-op without a token limit. Never rejects for a backend failure.
   */
  charge(keyId: string, tokens: number, limits: RateLimits): Promise<void>;
  /** Calls answered by an in-memory fallback because the shared backend failed or was not connected yet; 0 in memory. */
  fallbacks(): number;
  /** Releases the backend's connection; the limiter is not used afterwards. */
  close(): Promise<void>;
}

/** What the limiters log with: pino's `(fields, message)` shape. */
export interface LimitsLogger {
  warn(fields: object, message: string): void;
  info(fields: object, message: string): void;
}

/** The length of the window every limit is counted in. */
export const WINDOW_MS = 60_000;

/** The one `Admitted` value, and a resolved promise of it, so that admitting allocates nothing. */
export const ADMITTED: Admitted = Object.freeze({ allowed: true });
export const ADMITTED_PROMISE: Promise<Admission> = Promise.resolve(ADMITTED);

/** The `Retry-After` header value (whole seconds, rounded up) for a refusal. */
export function retryAfterSeconds(refusal: Refused): number {
  return Math.max(1, Math.ceil(refusal.retryAfterMs / 1000));
}

/**
 * A key's effective limits: each of its own limits where it has one, else the default. Spelled
 * out because `{ ...defaults, ...own }` would let an own `undefined` erase a default.
 */
export function effectiveLimits(own: RateLimits | undefined, defaults: RateLimits): RateLimits {
  return {
    requestsPerMinute: own?.requestsPerMinute ?? defaults.requestsPerMinute,
    tokensPerMinute: own?.tokensPerMinute ?? defaults.tokensPerMinute,
  };
}

/** Key ids name Redis keys and log lines: a short identifier, never a secret. */
export function checkKeyId(keyId: string): void {
  if (typeof keyId !== "string" || keyId.length === 0 || keyId.length > 256) {
    throw new RangeError("rate limit key id must be a non-empty string of at most 256 characters");
  }
}

export function checkTokens(tokens: number): void {
  if (!Number.isFinite(tokens) || tokens < 0) throw new RangeError(`token count must be a finite number >= 0, got ${tokens}`);
}
