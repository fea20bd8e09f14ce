import type { JsonObject } from "@bufbuild/protobuf";
import type { Provider } from "../providers/provider.js";
import { errorFromBadAnswer } from "../providers/upstream-error.js";

/** Added to every answer as Smarter does. */
export const API_VERSION = "smarter.sh/v1";

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
