import { Code, ConnectError } from "@connectrpc/connect";
import type { Principal } from "../call/record.js";
import { parseAuthorization } from "./credentials.js";

/**
 * The credential-verifier extension point (SPEC section 5): the contract every verifier
 * implements (API keys, Google ID tokens), the refusal reasons of the SPEC's table, and the one
 * place where a refusal becomes the ConnectError, and the `WWW-Authenticate` challenge, a caller gets.
 */

/** How a credential is routed to a verifier, decided from its shape alone (src/auth/credentials.ts). */
export type CredentialFormat = "api-key" | "id-token";

/** One credential as the `authorization` header carried it. */
export interface Credential {
  /** The scheme it came with, lower-cased: `Token` (Smarter/knox) or `Bearer`. */
  readonly scheme: "token" | "bearer";
  /** `api-key`: starts with `ptk_`; `id-token`: a JWT, for the Google ID token verifier. */
  readonly format: CredentialFormat;
  /** The secret itself: never logged, echoed, stored or put in an error. */
  readonly value: string;
}

/** The cases of SPEC section 5's table, each answered UNAUTHENTICATED / 401. */
export type RefusalReason = "missing" | "malformed" | "unknown" | "expired" | "revoked";

/** Why a credential was refused; `detail` is written for the caller and never contains the credential. */
export interface Refusal {
  readonly reason: RefusalReason;
  readonly detail: string;
}

/** Rate limits of one principal; a limit left out is the configuration's (`limits.*`). */
export interface PrincipalLimits {
  readonly requestsPerMinute?: number;
  readonly tokensPerMinute?: number;
}

/** A verified caller, with what authorization needs after authentication. */
export interface AuthPrincipal extends Principal {
  /** A key's name, for logs and listings. */
  readonly name?: string;
  /** A Google account's verified email. */
  readonly email?: string;
  /** Normalized names of the providers it may call; null: every provider. */
  readonly allowedProviders: readonly string[] | null;
  /** May manage keys and read every principal's journal. */
  readonly admin: boolean;
  /** Its own limits; undefined: the configuration's. */
  readonly limits: PrincipalLimits | undefined;
}

/** What a verifier decided: a principal, or a refusal. */
export type Verification =
  | { readonly principal: AuthPrincipal; readonly refusal?: undefined }
  | { readonly principal?: undefined; readonly refusal: Refusal };

/** Checks one kind of credential. Implementations sit beside this file; each runs test/auth/verifier.contract.ts. */
export interface CredentialVerifier {
  /** Names the verifier in logs and metrics, e.g. `api-key`, `google-id-token`. */
  readonly kind: string;
  /** Whether this verifier decides for the credential (by its format); the first verifier that accepts decides. */
  accepts(credential: Credential): boolean;
  /**
   * A principal or a refusal for anything about the credential itself, synchronously when the
   * verifier knows at once (a cached key), else as a promise; fails, with a ConnectError
   * (UNAVAILABLE), only when it cannot decide: its store or certificates are out of reach.
   */
  verify(credential: Credential): Verification | Promise<Verification>;
}

/** A refusal as a Verification, for verifiers to return. */
export function refuse(reason: RefusalReason, detail: string): Verification {
  return { refusal: { reason, detail } };
}

/** The realm named in every challenge. */
export const AUTH_REALM = "passthrough";

const missingHint = "send `authorization: Bearer <api key or Google ID token>` or `Token <api key>`";

/** The description a caller reads: which case it was first, then the detail. */
export function refusalDescription(refusal: Refusal): string {
  const detail = refusal.reason === "missing" ? `${refusal.detail}: ${missingHint}` : refusal.detail;
  return `${refusal.reason} credential: ${detail}`;
}

/**
 * The `WWW-Authenticate` value for a refusal (RFC 6750 section 3): no error code when no
 * credential was sent, `invalid_token` otherwise, since every case is answered 401.
 */
export function wwwAuthenticate(refusal: Refusal): string {
  if (refusal.reason === "missing") return `Bearer realm="${AUTH_REALM}"`;
  return `Bearer realm="${AUTH_REALM}", error="invalid_token", error_description="${quotable(refusalDescription(refusal))}"`;
}

/** RFC 6750 allows %x20-21 / %x23-5B / %x5D-7E in error_description: no quote, no backslash. */
function quotable(text: string): string {
  return text.replace(/["\\]/g, "'").replace(/[^\x20-\x7e]/g, "?");
}

/**
 * The one mapping of a refusal to the error a caller gets: UNAUTHENTICATED, its description,
 * and the challenge in the error's metadata, which every protocol relays as a response header.
 */
export function refusalError(refusal: Refusal): ConnectError {
  const error = new ConnectError(refusalDescription(refusal), Code.Unauthenticated, { "www-authenticate": wwwAuthenticate(refusal) });
  refusalReasons.set(error, refusal.reason);
  return error;
}

const refusalReasons = new WeakMap<ConnectError, RefusalReason>();

/** The reason of an error made by refusalError (for metrics); undefined for any other error. */
export function refusalReasonOf(error: unknown): RefusalReason | undefined {
  return error instanceof ConnectError ? refusalReasons.get(error) : undefined;
}

/** PERMISSION_DENIED unless the principal may call this (normalized) provider. */
export function assertProviderAllowed(principal: AuthPrincipal, providerName: string): void {
  if (principal.allowedProviders === null || principal.allowedProviders.includes(providerName)) return;
  const who = principal.kind === "key" ? "this API key" : "this Google account";
  throw new ConnectError(`permission denied: ${who} may not use provider "${providerName}"`, Code.PermissionDenied);
}

/** PERMISSION_DENIED unless the principal is an admin: a key created with `passthrough keys create --admin`. */
export function assertAdmin(principal: AuthPrincipal): void {
  if (principal.admin) return;
  const who = principal.kind === "key" ? "this API key is not an admin key (passthrough keys create --admin)" : "a Google account is never an admin";
  throw new ConnectError(`permission denied: ${who}`, Code.PermissionDenied);
}

const formatNames: Record<CredentialFormat, string> = { "api-key": "API keys", "id-token": "Google ID tokens" };

/**
 * Authenticates a call from its `authorization` header alone: parse, route to the first
 * verifier that accepts the credential, verify. Throws (or rejects with) the refusal's
 * ConnectError; synchronous when the verifier is, so that a cached key costs no promise.
 */
export function authenticate(verifiers: readonly CredentialVerifier[], authorization: string | null | undefined): AuthPrincipal | Promise<AuthPrincipal> {
  const parsed = parseAuthorization(authorization);
  if (parsed.refusal) throw refusalError(parsed.refusal);
  const { credential } = parsed;
  const verifier = verifiers.find((candidate) => candidate.accepts(credential));
  if (!verifier) throw refusalError({ reason: "unknown", detail: `this gateway accepts no ${formatNames[credential.format]}` });
  const verification = verifier.verify(credential);
  return verification instanceof Promise ? verification.then(principalOf) : principalOf(verification);
}

function principalOf(verification: Verification): AuthPrincipal {
  if (verification.refusal) throw refusalError(verification.refusal);
  return verification.principal;
}
