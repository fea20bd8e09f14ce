import { inspect } from "node:util";
import { GoogleAuth } from "google-auth-library";
import type { Secret } from "../config/secret.js";
import type { Credential } from "./provider.js";

/** No credential: for local providers such as Ollama. */
export const noCredential: Credential = { authorize: () => ({}), secrets: [] };

/** `Authorization: Bearer <key>`, the scheme of every OpenAI-compatible API. */
export function createApiKeyCredential(key: Secret): Credential {
  const headers = { authorization: `Bearer ${key.reveal()}` };
  return opaque("apiKey", { authorize: () => headers, secrets: [key.reveal()] });
}

/** A credential that prints and serializes as its kind only, should a provider ever be logged. */
function opaque(kind: string, credential: Credential): Credential {
  const shown = `[${kind} credential]`;
  Object.defineProperty(credential, "secrets", { value: credential.secrets, enumerable: false });
  Object.defineProperty(credential, "toJSON", { value: () => shown, enumerable: false });
  Object.defineProperty(credential, inspect.custom, { value: () => shown, enumerable: false });
  return credential;
}

/** An OAuth access token from google-auth-library's application default credentials (Vertex AI). */
export function createGoogleCredential(auth = new GoogleAuth({ scopes: ["https://www.googleapis.com/auth/cloud-platform"] })): Credential {
  return {
    async authorize(): Promise<Record<string, string>> {
      // The library caches the token and refreshes it before it expires.
      const token = await auth.getAccessToken();
      return token ? { authorization: `Bearer ${token}` } : {};
    },
    secrets: [],
  };
}
