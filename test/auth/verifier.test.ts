import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import {
  assertProviderAllowed,
  authenticate,
  refusalError,
  refuse,
  wwwAuthenticate,
  type AuthPrincipal,
  type Credential,
  type CredentialVerifier,
  type RefusalReason,
} from "../../src/auth/verifier.js";

const keyPrincipal: AuthPrincipal = { kind: "key", id: "k3y1d", name: "ci", allowedProviders: ["openai", "ollama"], admin: false, limits: { requestsPerMinute: 10 } };
const googlePrincipal: AuthPrincipal = { kind: "google", id: "1102484959", email: "ada@example.com", allowedProviders: null, admin: false, limits: undefined };

/** A verifier of one format that knows one value, for the routing tests (a plain object, no mocking). */
function verifierOf(format: Credential["format"], known: string, principal: AuthPrincipal): CredentialVerifier & { seen: Credential[] } {
  const seen: Credential[] = [];
  return {
    kind: format,
    seen,
    accepts: (credential) => credential.format === format,
    async verify(credential) {
      seen.push(credential);
      return credential.value === known ? { principal } : refuse("unknown", "no such credential");
    },
  };
}

describe("refusalError", () => {
  it.each<[RefusalReason, string]>([
    ["missing", "missing credential: no authorization header: send `authorization: Bearer <api key or Google ID token>` or `Token <api key>`"],
    ["malformed", "malformed credential: no authorization header"],
    ["unknown", "unknown credential: no authorization header"],
    ["expired", "expired credential: no authorization header"],
    ["revoked", "revoked credential: no authorization header"],
  ])("makes %s UNAUTHENTICATED, naming the case first", (reason, description) => {
    const error = refusalError({ reason, detail: "no authorization header" });
    expect(error.code).toBe(Code.Unauthenticated);
    expect(error.rawMessage).toBe(description);
    expect(error.metadata.get("www-authenticate")).toBe(wwwAuthenticate({ reason, detail: "no authorization header" }));
  });
});

describe("wwwAuthenticate", () => {
  it("challenges without an error code when no credential was sent (RFC 6750 section 3.1)", () => {
    expect(wwwAuthenticate({ reason: "missing", detail: "no authorization header" })).toBe('Bearer realm="passthrough"');
  });

  it("says invalid_token, with the description, for every other case", () => {
    expect(wwwAuthenticate({ reason: "expired", detail: "the Google ID token has expired" })).toBe(
      'Bearer realm="passthrough", error="invalid_token", error_description="expired credential: the Google ID token has expired"',
    );
  });

  it("keeps error_description to the characters RFC 6750 allows", () => {
    const value = wwwAuthenticate({ reason: "unknown", detail: 'a "quoted" \\ détail' });
    expect(value).toBe(`Bearer realm="passthrough", error="invalid_token", error_description="unknown credential: a 'quoted' ' d?tail"`);
    expect(() => new Headers({ "www-authenticate": value })).not.toThrow();
  });
});

describe("assertProviderAllowed", () => {
  it("lets a principal without a list call every provider", () => {
    expect(() => assertProviderAllowed(googlePrincipal, "anthropic")).not.toThrow();
  });

  it("lets a key call the providers of its list", () => {
    expect(() => assertProviderAllowed(keyPrincipal, "ollama")).not.toThrow();
  });

  it("refuses any other provider with PERMISSION_DENIED", () => {
    const call = () => assertProviderAllowed(keyPrincipal, "anthropic");
    expect(call).toThrow(ConnectError);
    expect(call).toThrow('[permission_denied] permission denied: this API key may not use provider "anthropic"');
    expect(() => assertProviderAllowed({ ...googlePrincipal, allowedProviders: [] }, "openai")).toThrow("this Google account may not use");
  });
});

describe("authenticate", () => {
  const jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln";
  const verifiers = () => [verifierOf("api-key", "ptk_k3y1d_secret", keyPrincipal), verifierOf("id-token", jwt, googlePrincipal)];

  it("routes each credential to the verifier of its format", async () => {
    const [keys, tokens] = verifiers();
    await expect(authenticate([keys, tokens], "Token ptk_k3y1d_secret")).resolves.toBe(keyPrincipal);
    await expect(authenticate([keys, tokens], `Bearer ${jwt}`)).resolves.toBe(googlePrincipal);
    expect(keys.seen.map((credential) => credential.scheme)).toEqual(["token"]);
    expect(tokens.seen.map((credential) => credential.scheme)).toEqual(["bearer"]);
  });

  it.each([
    ["no header", undefined, "missing credential: no authorization header"],
    ["a malformed header", "Basic dXNlcjpwYXNz", "malformed credential: the authorization scheme is not supported"],
    ["a credential its verifier does not know", "Bearer ptk_k3y1d_other", "unknown credential: no such credential"],
  ])("refuses %s with the refusal's error, before any verifier of another format is asked", async (_, header, description) => {
    const [keys, tokens] = verifiers();
    const error = await Promise.resolve()
      .then(() => authenticate([keys, tokens], header))
      .catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.Unauthenticated);
    expect((error as ConnectError).rawMessage).toContain(description);
    expect((error as ConnectError).metadata.has("www-authenticate")).toBe(true);
    expect(tokens.seen).toEqual([]);
  });

  it("calls a credential no verifier accepts unknown, saying which kind is not accepted", async () => {
    const [keys] = verifiers();
    expect(() => authenticate([keys], `Bearer ${jwt}`)).toThrow("unknown credential: this gateway accepts no Google ID tokens");
  });

  it("passes on a verifier's own failure (the store out of reach) as it is", async () => {
    const unavailable = new ConnectError("key store unavailable", Code.Unavailable);
    const failing: CredentialVerifier = { kind: "api-key", accepts: () => true, verify: () => Promise.reject(unavailable) };
    await expect(authenticate([failing], "Bearer ptk_k3y1d_secret")).rejects.toBe(unavailable);
  });
});
