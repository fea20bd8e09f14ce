import type { DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { HeaderCheck } from "../call/header-stage.js";
import { kCallRecord, type CallListener, type CallRecord } from "../call/record.js";
import { assertAdmin, assertProviderAllowed, authenticate, refusalReasonOf, type AuthPrincipal, type CredentialVerifier, type RefusalReason } from "../auth/verifier.js";
import { rateLimitedError } from "../limits/errors.js";
import { effectiveLimits, type LimitName, type RateLimiter, type RateLimits } from "../limits/rate-limiter.js";
import type { Logger } from "../logging/logger.js";
import { normalizeProviderName } from "../providers/provider.js";
import { callsProvider } from "../service/provider-methods.js";
import { withFirst } from "./first-message.js";

export interface AuthOptions {
  /** Asked in order; the first that accepts a credential decides. */
  verifiers: readonly CredentialVerifier[];
  limiter: RateLimiter;
  /** The configured limits, for principals without limits of their own. */
  limits: RateLimits;
  logger: Logger;
  /** Services only admin principals may call (keys created with `--admin`); others are PERMISSION_DENIED. */
  adminServices?: readonly DescService[];
  /** Told of each refusal, for metrics: the credential's, a permission's, or a rate limit's. */
  onRefusal?(refusal: AuthRefusal): void;
}

/** Why a call was refused: a credential (SPEC section 5's cases), a permission, or a rate limit. */
export type AuthRefusal = { readonly kind: "auth"; readonly reason: RefusalReason | "permission_denied" } | { readonly kind: "rate-limit"; readonly limit: LimitName };

/** Authentication's three parts, each installed where it runs. */
export interface Authentication {
  /** Decides from the headers alone, before the body is read: the principal, or a refusal; counts the request against its limits. */
  readonly headerCheck: HeaderCheck;
  /**
   * PERMISSION_DENIED for a provider the principal may not use, before the provider is called or
   * even resolved; only on the methods that call one (Passthrough, PassthroughStream):
   * ListProviders filters by it instead, and JournalService's provider_name is a filter.
   */
  readonly interceptor: Interceptor;
  /** Charges the tokens the provider reported to the principal's tokens-per-minute budget. */
  readonly onCallEnd: CallListener;
}

/**
 * Authentication and authorization on every protocol (SPEC section 5). A refused call is
 * logged here, without its credential, and never reaches the interceptors or the provider.
 */
export function createAuthInterceptor({ verifiers, limiter, limits, logger, adminServices = [], onRefusal }: AuthOptions): Authentication {
  const adminOnly = new Set(adminServices.map((service) => service.typeName));

  const refused = (call: CallRecord, error: unknown): never => {
    const refusal = ConnectError.from(error);
    const reason = refusalReasonOf(refusal);
    if (reason !== undefined) onRefusal?.({ kind: "auth", reason });
    logger.info({ procedure: call.procedure, protocol: call.protocol, principal: call.principal?.id, code: Code[refusal.code], error: refusal.rawMessage }, "call refused");
    throw refusal;
  };
  const admit = (call: CallRecord, principal: AuthPrincipal): void | Promise<void> => {
    call.principal = principal;
    const own = effectiveLimits(principal.limits, limits);
    if (own.requestsPerMinute === undefined && own.tokensPerMinute === undefined) return;
    return limiter.admit(principal.id, own).then((admission) => {
      if (admission.allowed) return;
      onRefusal?.({ kind: "rate-limit", limit: admission.limit });
      throw rateLimitedError(admission);
    });
  };

  // Synchronous for a cached key without limits, the common case: no promise on the call path.
  const headerCheck: HeaderCheck = (call) => {
    let admitted: void | Promise<void>;
    try {
      const principal = authenticate(verifiers, call.requestHeader.get("authorization"));
      admitted = principal instanceof Promise ? principal.then((verified) => admit(call, verified)) : admit(call, principal);
    } catch (error) {
      return refused(call, error);
    }
    return admitted instanceof Promise ? admitted.catch((error: unknown) => refused(call, error)) : undefined;
  };

  /** Runs an authorization check, counting its PERMISSION_DENIED. */
  const denying = (assertion: () => void): void => {
    try {
      assertion();
    } catch (error) {
      onRefusal?.({ kind: "auth", reason: "permission_denied" });
      throw error;
    }
  };

  // Not async: a call that passes costs no promise of its own; a refusal is a rejected promise, as from any interceptor.
  const interceptor: Interceptor = (next) => (req) => {
    try {
      const call = req.contextValues.get(kCallRecord);
      if (call === undefined) return next(req);
      const principal = authPrincipalOf(call);
      // Fail closed: a recorded call always passed the header check, or was refused there. A
      // refused stream's body throws the refusal when read (connect-door.ts): read it first, so
      // that the caller gets the refusal's own words; no message reaches the handler either way.
      if (principal === undefined) {
        if (!req.stream) throw notAuthenticated();
        const failClosed = () => {
          throw notAuthenticated();
        };
        return next({ ...req, message: withFirst(req.message, failClosed) });
      }
      if (adminOnly.has(call.method.parent.typeName)) {
        denying(() => assertAdmin(principal));
        return next(req);
      }
      if (!callsProvider(call.method)) return next(req);
      const check = (message: unknown) => denying(() => assertProviderAllowed(principal, normalizeProviderName(String((message as { providerName?: unknown }).providerName ?? ""))));
      if (!req.stream) {
        check(req.message);
        return next(req);
      }
      return next({ ...req, message: withFirst(req.message, check) });
    } catch (error) {
      return Promise.reject(error);
    }
  };

  const onCallEnd: CallListener = (call) => {
    const principal = authPrincipalOf(call);
    const tokens = call.usage?.totalTokens;
    if (principal === undefined || tokens === undefined || tokens <= 0) return;
    const own = effectiveLimits(principal.limits, limits);
    if (own.tokensPerMinute === undefined) return;
    limiter.charge(principal.id, tokens, own).catch((error: unknown) => logger.warn({ err: error, principal: principal.id }, "tokens not charged"));
  };

  return { headerCheck, interceptor, onCallEnd };
}

/** The principal the header check put in the record: only authentication sets one, and always with `admin`. */
function authPrincipalOf(call: CallRecord): AuthPrincipal | undefined {
  const principal = call.principal;
  return principal !== undefined && "admin" in principal ? (principal as AuthPrincipal) : undefined;
}

function notAuthenticated(): ConnectError {
  return new ConnectError("unauthenticated: the call was not authenticated", Code.Unauthenticated);
}
