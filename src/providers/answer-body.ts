import { isUtf8 } from "node:buffer";
import type { IncomingHttpHeaders } from "node:http";
import type { Readable } from "node:stream";

/**
 * Reading a provider's answer within the gateway's bounds (SPEC section 3): a whole answer
 * within `upstream.maxAnswerBytes`, an error body within ERROR_BODY_BYTES (relayed truncated),
 * no content coding, and for a whole answer valid UTF-8.
 */

/** Error bodies are relayed for diagnosis only: this much of one is read, the rest dropped. */
export const ERROR_BODY_BYTES = 64 * 1024;

/**
 * A provider's answer broke one of these rules: the call fails UNAVAILABLE / 502 (upstream-error.ts).
 * Messages avoid "," and ";": gRPC callers on grpc-js would see them percent-encoded.
 */
export class AnswerError extends Error {
  override name = "AnswerError";

  /** `what` completes "provider X answered with …". */
  constructor(
    readonly errorClass: string,
    what: string,
  ) {
    super(what);
  }
}

export function answerTooLarge(limitBytes: number): AnswerError {
  return new AnswerError("UpstreamAnswerTooLarge", `more than the ${formatBytes(limitBytes)} allowed (upstream.maxAnswerBytes)`);
}

/**
 * A body in a content coding other than identity. The gateway asks for none
 * (`accept-encoding: identity`) and inflates none: a compressed body can be no bomb, and
 * is never relayed as JSON the gateway cannot vouch for.
 */
export function encodingRefusal(headers: IncomingHttpHeaders): AnswerError | undefined {
  const encoding = headers["content-encoding"];
  if (encoding === undefined) return undefined;
  const value = (Array.isArray(encoding) ? encoding.join(", ") : encoding).trim().toLowerCase();
  if (value === "" || value === "identity") return undefined;
  const shown = value.replace(/[^\x20-\x7e]/g, "?").slice(0, 40);
  return new AnswerError("UpstreamBadResponse", `a body in content-encoding "${shown}" the gateway did not ask for`);
}

/** True when the declared content-length is past the bound: refused before its body is read. */
export function declaredTooLarge(headers: IncomingHttpHeaders, limitBytes: number): boolean {
  const length = headers["content-length"];
  return length !== undefined && Number(length) > limitBytes;
}

/** A whole answer as text. JSON is UTF-8 (RFC 8259): an answer that is not is refused, not altered. */
export function decodeAnswer(bytes: Buffer): string {
  if (!isUtf8(bytes)) throw new AnswerError("UpstreamBadResponse", "a body that is not valid UTF-8");
  return bytes.toString("utf8");
}

/**
 * Reads a whole answer within `limitBytes` and decodes it (decodeAnswer). Past the bound it
 * throws AnswerError, and leaving the loop destroys the body: the connection is released and
 * nothing more is read.
 */
export async function readAnswer(body: Readable, headers: IncomingHttpHeaders, limitBytes: number): Promise<string> {
  if (declaredTooLarge(headers, limitBytes)) {
    release(body);
    throw answerTooLarge(limitBytes);
  }
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length > limitBytes) throw answerTooLarge(limitBytes);
    chunks.push(chunk);
  }
  return decodeAnswer(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, length));
}

/**
 * Reads at most ERROR_BODY_BYTES of an error body, then destroys the rest: its text, cut
 * off there (invalid UTF-8 replaced: it is relayed for diagnosis, re-serialized). A
 * compressed one is dropped unread.
 */
export async function readErrorBody(body: Readable, headers: IncomingHttpHeaders): Promise<string> {
  if (encodingRefusal(headers) !== undefined) {
    release(body);
    return "";
  }
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    const room = ERROR_BODY_BYTES - length;
    chunks.push(chunk.length > room ? chunk.subarray(0, room) : chunk);
    length += Math.min(chunk.length, room);
    if (chunk.length > room) break;
  }
  return Buffer.concat(chunks, length).toString("utf8");
}

/** Destroys a body no one reads: an undici body reports that as an error, which nothing must throw. */
export function release(body: Readable): void {
  body.on("error", () => {});
  body.destroy();
}

/** `32 MiB`, `64 KiB`, or `1000 bytes`. */
export function formatBytes(bytes: number): string {
  if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} bytes`;
}
