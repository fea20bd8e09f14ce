import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { authenticate, refusalError, wwwAuthenticate, type Credential, type CredentialVerifier, type RefusalReason } from "../../src/auth/verifier.js";

/**
 * The shared contract test of src/auth/verifier.ts: every CredentialVerifier runs it with a
 * factory and one sample credential per outcome. A verifier that cannot produce an outcome
 * (a Google ID token cannot be revoked) passes undefined for it, and that case gets no test.
 */

export interface VerifierSamples {
  /** Verifies to `expectedPrincipal`. */
  readonly valid: Credential;
  readonly expired: Credential | undefined;
  /** Well-formed, but not one the verifier knows (another key's signature, an id not in the store). */
  readonly unknown: Credential | undefined;
  readonly revoked: Credential | undefined;
  /** Of the verifier's format by its shape, but not readable (a JWT whose header is not JSON, a key with no secret). */
  readonly malformed: Credential | undefined;
  /** A credential of another verifier's format, which this one must not accept. */
  readonly foreign: Credential;
}

export interface VerifierContract {
  readonly name: string;
  /** A new verifier over the same world as the samples (the same store, the same certificates). */
  readonly newVerifier: () => CredentialVerifier | Promise<CredentialVerifier>;
  readonly credentials: VerifierSamples;
  /** Who the valid credential is. */
  readonly expectedPrincipal: { readonly kind: "key" | "google"; readonly id: string };
}

const refusalReasons = ["expired", "unknown", "revoked", "malformed"] as const satisfies readonly RefusalReason[];

/**
 * The credential and its long pieces: none of them may appear in what a caller or a log sees,
 * except `publicId`, the principal's id, which a credential may carry (an API key's lookup id).
 */
function secretFragments(credential: Credential, publicId?: string): string[] {
  return [credential.value, ...credential.value.split(/[._]/).filter((piece) => piece.length >= 8 && piece !== publicId)];
}

function expectNoEcho(text: string, credential: Credential, publicId?: string): void {
  for (const fragment of secretFragments(credential, publicId)) expect(text).not.toContain(fragment);
}

const header = (credential: Credential) => `${credential.scheme === "token" ? "Token" : "Bearer"} ${credential.value}`;

export function runVerifierContract({ name, newVerifier, credentials, expectedPrincipal }: VerifierContract): void {
  describe(`credential verifier contract: ${name}`, () => {
    it("names its kind", async () => {
      const verifier = await newVerifier();
      expect(verifier.kind).toMatch(/^[a-z][a-z0-9-]*$/);
    });

    it("accepts every credential of its format, and not another verifier's", async () => {
      const verifier = await newVerifier();
      const own = [credentials.valid, ...refusalReasons.map((reason) => credentials[reason])].filter((sample) => sample !== undefined);
      for (const credential of own) expect(verifier.accepts(credential)).toBe(true);
      expect(verifier.accepts(credentials.foreign)).toBe(false);
    });

    it("verifies the valid credential to its principal, with what authorization needs and no secret", async () => {
      const verifier = await newVerifier();
      const verification = await verifier.verify(credentials.valid);
      expect(verification.refusal).toBeUndefined();
      const principal = verification.principal!;
      expect({ kind: principal.kind, id: principal.id }).toEqual(expectedPrincipal);
      expect(principal.allowedProviders === null || Array.isArray(principal.allowedProviders)).toBe(true);
      expect(typeof principal.admin).toBe("boolean");
      expect(principal.limits === undefined || typeof principal.limits === "object").toBe(true);
      expectNoEcho(JSON.stringify(principal), credentials.valid, expectedPrincipal.id);
    });

    it("gives the same principal every time, and through authenticate()", async () => {
      const verifier = await newVerifier();
      const first = await verifier.verify(credentials.valid);
      const again = await verifier.verify(credentials.valid);
      expect(again).toEqual(first);
      expect(await authenticate([verifier], header(credentials.valid))).toEqual(first.principal);
    });

    for (const reason of refusalReasons) {
      const credential = credentials[reason];
      // A case this verifier cannot produce (a Google ID token is never revoked) has no test.
      if (credential === undefined) continue;
      const article = reason === "revoked" || reason === "malformed" ? "a" : "an";
      it(`refuses ${article} ${reason} credential as ${reason}, echoing none of it`, async () => {
        const verifier = await newVerifier();
        const verification = await verifier.verify(credential);
        expect(verification.principal).toBeUndefined();
        expect(verification.refusal?.reason).toBe(reason);
        expect(verification.refusal!.detail.length).toBeGreaterThan(0);
        expectNoEcho(verification.refusal!.detail, credential);
        expectNoEcho(wwwAuthenticate(verification.refusal!), credential);

        const error = await Promise.resolve()
          .then(() => authenticate([verifier], header(credential)))
          .then(() => undefined, (thrown: unknown) => thrown);
        expect(error).toBeInstanceOf(ConnectError);
        const connectError = error as ConnectError;
        expect(connectError.code).toBe(Code.Unauthenticated);
        expect(connectError.rawMessage).toBe(refusalError(verification.refusal!).rawMessage);
        expect(connectError.rawMessage.startsWith(`${reason} credential: `)).toBe(true);
        expect(connectError.metadata.get("www-authenticate")).toContain('error="invalid_token"');
        expectNoEcho(connectError.message, credential);
      });
    }
  });
}
