import { Counter, type Registry } from "prom-client";
import type { AuthRefusal } from "../interceptors/auth.js";
import type { LimitName } from "../limits/rate-limiter.js";

const AUTH_REASONS = ["missing", "malformed", "unknown", "expired", "revoked", "permission_denied"] as const;
const LIMITS: Record<LimitName, string> = { requestsPerMinute: "requests", tokensPerMinute: "tokens" };

/**
 * `passthrough_auth_refusals_total{reason}` (the cases of SPEC section 5's table, and
 * `permission_denied`) and `passthrough_rate_limit_refusals_total{limit}` (`requests`, `tokens`),
 * every series there from the start at 0, so that a rate over them is defined before the first
 * refusal. Returns the listener authentication tells of each refusal.
 */
export function createRefusalMetrics(registry: Registry): (refusal: AuthRefusal) => void {
  const auth = new Counter({
    name: "passthrough_auth_refusals_total",
    help: "Calls refused by authentication (missing, malformed, unknown, expired, revoked credential) or authorization (permission_denied).",
    labelNames: ["reason"],
    registers: [registry],
  });
  const limits = new Counter({
    name: "passthrough_rate_limit_refusals_total",
    help: "Calls refused because their key was over its requests or tokens per minute.",
    labelNames: ["limit"],
    registers: [registry],
  });
  const byReason = new Map(AUTH_REASONS.map((reason) => [reason as string, auth.labels(reason)]));
  const byLimit = new Map(Object.entries(LIMITS).map(([limit, label]) => [limit, limits.labels(label)]));
  for (const series of [...byReason.values(), ...byLimit.values()]) series.inc(0);
  return (refusal) => (refusal.kind === "auth" ? byReason.get(refusal.reason) : byLimit.get(refusal.limit))?.inc();
}
