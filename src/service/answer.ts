import type { JsonObject } from "@bufbuild/protobuf";
import type { Provider } from "../providers/provider.js";
import { errorFromBadAnswer } from "../providers/upstream-error.js";
import { API_VERSION } from "./journal-key.js";

/** Parses a provider's answer; anything but a JSON object is a bad answer (UNAVAILABLE, 502). */
export function parseAnswer(provider: Provider, text: string): JsonObject {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw errorFromBadAnswer(provider, "a body that is not JSON");
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw errorFromBadAnswer(provider, "JSON that is not an object");
  }
  return parsed as JsonObject;
}

/** The answer as an object with Smarter's `api` and `metadata` keys added. */
export function withGatewayFields(answer: JsonObject, journalKey: string): JsonObject {
  return { ...answer, api: API_VERSION, metadata: { key: journalKey } };
}

/**
 * The answer's own bytes with `api` and `metadata` spliced in before its closing brace, so a
 * REST caller gets exactly what the provider sent (number formats, key order, escapes) plus
 * the two keys. When the provider already used either key, they are replaced by re-serializing.
 */
export function spliceGatewayFields(text: string, answer: JsonObject, journalKey: string): string {
  if ("api" in answer || "metadata" in answer) return JSON.stringify(withGatewayFields(answer, journalKey));
  const close = text.lastIndexOf("}");
  const fields = `"api":"${API_VERSION}","metadata":{"key":"${journalKey}"}`;
  const empty = Object.keys(answer).length === 0;
  return `${text.slice(0, close)}${empty ? "" : ","}${fields}${text.slice(close)}`;
}
