import { createHash, createHmac } from "node:crypto";
import { Pool } from "undici";
import { eventsJson, type SignalEvent, type SignalSink, type SinkContext } from "../sink.js";
import { abortedError } from "./abort.js";

export interface WebhookSinkOptions {
  /** An http:// or https:// URL; each batch is POSTed to it. Required. */
  url: string;
  /** Signs every batch (see `signingKeys`). Required; it never appears in an error or a log. */
  secret: string;
  /** One delivery's bound, from sending the request to reading the answer. Default 10 s. */
  timeoutMs?: number;
}

/** The prefix of a Standard Webhooks secret: base64 of the key follows it. */
const WHSEC_PREFIX = "whsec_";

/**
 * The `webhook` sink (SPEC section 6): POSTs one batch as a JSON array and signs it twice, with
 * `x-passthrough-signature: sha256=<hex HMAC-SHA256 of the body>` and with the Standard Webhooks
 * headers (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of
 * "{id}.{timestamp}.{body}">`). Any answer but a 2xx rejects, so that the dispatcher retries;
 * redirects are not followed.
 */
export function createWebhookSink(options: WebhookSinkOptions, _context?: SinkContext): SignalSink {
  const { url, secret, timeoutMs = 10_000 } = options;
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    throw new TypeError("url must be an http:// or https:// URL");
  }
  if (target.protocol !== "http:" && target.protocol !== "https:") throw new TypeError("url must be an http:// or https:// URL");
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) throw new RangeError(`timeoutMs must be a positive integer, got ${timeoutMs}`);
  return new WebhookSink(target, signingKeys(secret), timeoutMs);
}

/**
 * The two HMAC keys of a secret. `x-passthrough-signature` always uses the secret's UTF-8 bytes.
 * The Standard Webhooks signature uses, for a `whsec_` secret, the base64-decoded rest, as the
 * spec and its libraries do; for any other secret, its UTF-8 bytes (a receiver using the
 * `standardwebhooks` library then passes those bytes with `{ format: "raw" }`).
 */
export function signingKeys(secret: string): { passthrough: Buffer; standard: Buffer } {
  if (typeof secret !== "string" || secret === "") throw new TypeError("secret must be a non-empty string");
  const passthrough = Buffer.from(secret, "utf8");
  if (!secret.startsWith(WHSEC_PREFIX)) return { passthrough, standard: passthrough };
  const encoded = secret.slice(WHSEC_PREFIX.length);
  // Checked strictly (Node's decoder skips what is not base64): a typo must not sign with another key.
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded) || encoded.length % 4 !== 0) throw new TypeError("secret: after whsec_ a Standard Webhooks secret must be base64");
  return { passthrough, standard: Buffer.from(encoded, "base64") };
}

/**
 * The batch's `webhook-id`: a digest of its event ids, the same on every retry of the batch
 * (so that a receiver can drop one it already has) and different for any other batch.
 */
export function webhookId(events: readonly SignalEvent[]): string {
  const digest = createHash("sha256");
  for (const event of events) digest.update(event.id).update("\n");
  return `msg_${digest.digest("hex").slice(0, 32)}`;
}

class WebhookSink implements SignalSink {
  readonly name = "webhook";
  readonly #pool: Pool;
  readonly #path: string;
  readonly #authorization: string | undefined;
  readonly #keys: { passthrough: Buffer; standard: Buffer };
  readonly #timeoutMs: number;
  #closing: Promise<void> | undefined;

  constructor(target: URL, keys: { passthrough: Buffer; standard: Buffer }, timeoutMs: number) {
    // One connection, kept alive: the dispatcher sends one batch at a time.
    this.#pool = new Pool(target.origin, { connections: 1, pipelining: 1 });
    this.#path = `${target.pathname}${target.search}`;
    // Credentials in the URL become Basic authentication; they are never part of a message.
    this.#authorization = target.username === "" ? undefined : `Basic ${Buffer.from(`${decodeURIComponent(target.username)}:${decodeURIComponent(target.password)}`).toString("base64")}`;
    this.#keys = keys;
    this.#timeoutMs = timeoutMs;
  }

  async deliver(events: readonly SignalEvent[], signal: AbortSignal): Promise<void> {
    if (this.#closing) throw new Error("the webhook sink is closed");
    if (signal.aborted) throw abortedError(signal, "the webhook delivery");
    const body = Buffer.from(eventsJson(events), "utf8");
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const bounded = AbortSignal.any([signal, timeout]);
    let statusCode: number;
    try {
      const answer = await this.#pool.request({ path: this.#path, method: "POST", headers: this.#headers(events, body), body, signal: bounded });
      statusCode = answer.statusCode;
      // Read to the end, so that the connection is kept for the next batch; a long answer closes it instead.
      await answer.body.dump({ limit: 64 * 1024, signal: bounded }).catch(() => {});
    } catch (error) {
      if (signal.aborted) throw abortedError(signal, "the webhook delivery");
      if (timeout.aborted) throw new Error(`the webhook did not answer within ${this.#timeoutMs} ms`, { cause: error });
      const code = (error as { code?: unknown }).code;
      throw new Error(`the webhook could not be reached${typeof code === "string" ? ` (${code})` : ""}`, { cause: error });
    }
    if (statusCode < 200 || statusCode > 299) throw new Error(`the webhook answered ${statusCode}`);
  }

  close(): Promise<void> {
    this.#closing ??= this.#pool.close().then(
      () => undefined,
      () => this.#pool.destroy(),
    );
    return this.#closing;
  }

  #headers(events: readonly SignalEvent[], body: Buffer): Record<string, string> {
    const id = webhookId(events);
    const timestamp = String(Math.floor(Date.now() / 1000));
    const standard = createHmac("sha256", this.#keys.standard).update(`${id}.${timestamp}.`).update(body).digest("base64");
    return {
      "content-type": "application/json",
      "user-agent": "passthrough",
      "x-passthrough-signature": `sha256=${createHmac("sha256", this.#keys.passthrough).update(body).digest("hex")}`,
      "webhook-id": id,
      "webhook-timestamp": timestamp,
      "webhook-signature": `v1,${standard}`,
      ...(this.#authorization === undefined ? {} : { authorization: this.#authorization }),
    };
  }
}
