/** The last whole second formatted, and its text up to the milliseconds ("2026-12-06T23:20:05."). */
let cachedSecond = Number.NaN;
let cachedPrefix = "";

/** Epoch ms of 10000-01-01: past it (and before 1970) `toISOString` writes a six-digit year. */
const YEAR_10000 = 253_402_300_800_000;

/**
 * `new Date(ms).toISOString()`, made from the formatted second it falls in: a call's events
 * and its journal entry mostly fall in the same few seconds, and formatting a date anew each
 * time cost more than the rest of an event's head.
 */
export function isoTimeOf(ms: number): string {
  if (!Number.isInteger(ms) || ms < 0 || ms >= YEAR_10000) return new Date(ms).toISOString();
  const second = Math.floor(ms / 1000);
  if (second !== cachedSecond) {
    cachedSecond = second;
    cachedPrefix = new Date(second * 1000).toISOString().slice(0, 20);
  }
  const milliseconds = ms - second * 1000;
  return `${cachedPrefix}${milliseconds < 10 ? "00" : milliseconds < 100 ? "0" : ""}${milliseconds}Z`;
}
