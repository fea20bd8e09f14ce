import { Code, ConnectError } from "@connectrpc/connect";
import { retryAfterSeconds, type LimitName, type Refused } from "./rate-limiter.js";

const LIMIT_WORDS: Record<LimitName, string> = {
  requestsPerMinute: "requests-per-minute",
  tokensPerMinute: "tokens-per-minute",
};

/**
 * The error a refused call ends with (SPEC section 5): RESOURCE_EXHAUSTED, which REST maps to
 * 429, with `retry-after` (whole seconds) in its metadata, which every protocol relays as a
 * header. The description names the limit and the wait, never the key or its secret. It has
 * no ':' or ';' because connect percent-encodes those in grpc-message and grpc-js leaves them so.
 */
export function rateLimitedError(refusal: Refused): ConnectError {
  const seconds = retryAfterSeconds(refusal);
  return new ConnectError(
    `this key is over its ${LIMIT_WORDS[refusal.limit]} limit (retry after ${seconds} s)`,
    Code.ResourceExhausted,
    { "retry-after": String(seconds) },
  );
}
