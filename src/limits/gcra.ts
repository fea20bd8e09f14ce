import { WINDOW_MS, type LimitName, type Refused } from "./rate-limiter.js";

/**
 * GCRA's arithmetic, shared by the in-memory limiter; `redis-script.ts` does the same in Lua.
 * A limit of N per minute spends `WINDOW_MS / N` of a key's "theoretical arrival time" (TAT)
 * per unit; a unit conforms while the TAT it leads to lies at most one window ahead of now.
 * A TAT at or before now holds no information, which is what lets idle state be dropped.
 */

/** Float slack when comparing times, so that waiting exactly `retryAfterMs` is always enough. */
export const EPSILON_MS = 0.001;

/** The share of the window one unit of a limit costs; 0 for an absent (unlimited) limit. */
export function emissionIntervalMs(perMinute: number | undefined, name: LimitName): number {
  if (perMinute === undefined) return 0;
  if (!(perMinute > 0) || perMinute === Infinity) throw new RangeError(`${name} must be a positive number, got ${perMinute}`);
  return WINDOW_MS / perMinute;
}

/** How long until one more unit conforms, for a limit with this interval and TAT; <= EPSILON_MS: now. */
export function waitMs(tat: number, now: number, intervalMs: number): number {
  return intervalMs === 0 ? 0 : Math.max(tat, now) + intervalMs - WINDOW_MS - now;
}

/** The TAT after spending `units` of a limit. */
export function spend(tat: number, now: number, intervalMs: number, units: number): number {
  return Math.max(tat, now) + units * intervalMs;
}

/** A wait as the whole milliseconds a refusal reports: rounded up, at least 1. */
export function retryAfterMs(wait: number): number {
  return Math.max(1, Math.ceil(wait - EPSILON_MS));
}

/** The refusal for these waits (at least one over EPSILON_MS): the limit that frees up last. */
export function refusal(requestWait: number, tokenWait: number): Refused {
  return requestWait >= tokenWait
    ? { allowed: false, limit: "requestsPerMinute", retryAfterMs: retryAfterMs(requestWait) }
    : { allowed: false, limit: "tokensPerMinute", retryAfterMs: retryAfterMs(tokenWait) };
}
