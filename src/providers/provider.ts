/**
 * The provider contract: where a call goes and how the gateway authenticates there. Every
 * provider speaks OpenAI's `POST {baseUrl}/chat/completions`; they differ only in these values.
 */
export interface Provider {
  /** Normalized name: lower-case, `-` and spaces become `_`. */
  readonly name: string;
  /** `scheme://host:port` of `baseUrl`: the connection pool's key. */
  readonly origin: string;
  /** Path of the chat-completions endpoint below the origin. */
  readonly completionsPath: string;
  /** Bounds the whole call, retries included. */
  readonly timeoutMs: number;
  /** Retries before any byte was relayed. */
  readonly retries: number;
  /** Extra headers sent on every call. */
  readonly headers: Readonly<Record<string, string>>;
  readonly credential: Credential;
}

/** How the gateway proves itself to a provider. */
export interface Credential {
  /** Headers to add to a call; synchronous for static keys so the hot path does not await. */
  authorize(): Record<string, string> | Promise<Record<string, string>>;
  /** The secret values, so that anything relayed from the provider can be scrubbed of them. */
  readonly secrets: readonly string[];
}

/** Smarter's normalization: lower-cased, `-` and spaces become `_`. */
export function normalizeProviderName(name: string): string {
  return name.trim().toLowerCase().replace(/[- ]/g, "_");
}
