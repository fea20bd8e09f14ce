import { EPSILON_MS } from "./gcra.js";
import { WINDOW_MS } from "./rate-limiter.js";

/**
 * The one Lua script behind every Redis check: `gcra.ts`'s arithmetic, run atomically next to
 * the key's state, so that any number of instances count one budget. A key is one hash (`r`:
 * the requests TAT, `t`: the tokens TAT, in milliseconds) that expires when both lie in the
 * past, which is exactly when it stops holding information: Redis memory stays bounded.
 *
 * KEYS[1]: the key's hash. ARGV: "admit" or "charge"; now in ms, or "" for Redis's own TIME;
 * the request interval and the token interval in ms (0: unlimited); the tokens to charge.
 * Replies `{1}` when admitted or charged, `{0, 1 | 2, retryAfterMs}` when refused by the
 * requests (1) or tokens (2) limit.
 */
export const RATE_LIMIT_SCRIPT = `
local window = ${WINDOW_MS}
local epsilon = ${EPSILON_MS}
local now = tonumber(ARGV[2])
if now == nil then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + tonumber(time[2]) / 1000
end
local requestInterval = tonumber(ARGV[3])
local tokenInterval = tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'r', 't')
local requests = tonumber(state[1]) or 0
local tokens = tonumber(state[2]) or 0
if ARGV[1] == 'admit' then
  local requestWait, tokenWait = 0, 0
  if requestInterval > 0 then requestWait = math.max(requests, now) + requestInterval - window - now end
  if tokenInterval > 0 then tokenWait = math.max(tokens, now) + tokenInterval - window - now end
  if requestWait > epsilon or tokenWait > epsilon then
    if requestWait >= tokenWait then return {0, 1, math.max(1, math.ceil(requestWait - epsilon))} end
    return {0, 2, math.max(1, math.ceil(tokenWait - epsilon))}
  end
  if requestInterval == 0 then return {1} end
  requests = math.max(requests, now) + requestInterval
  redis.call('HSET', KEYS[1], 'r', string.format('%.17g', requests))
else
  tokens = math.max(tokens, now) + tonumber(ARGV[5]) * tokenInterval
  redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens))
end
redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil(math.max(requests, tokens) - now)))
return {1}
`;
