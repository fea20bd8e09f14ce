import { GoogleAuth } from "google-auth-library";
import type { Secret } from "../config/secret.js";
import type { Credential } from "./provider.js";

/** No credential: for local providers such as Ollama. */
export const noCredential: Credential = { authorize: () => ({}), secrets: [] };

/** `Authorization: Bearer <key>`, the scheme of every OpenAI-compatible API. */
export function createApiKeyCredential(key: Secret): Credential {
  const headers = { authorization: `Bearer ${key.reveal()}` };
  return { authorize: () => headers, secrets: [key.reveal()] };
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
