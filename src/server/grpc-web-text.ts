import { Code, ConnectError } from "@connectrpc/connect";
import type { UniversalHandlerFn, UniversalServerRequest, UniversalServerResponse } from "@connectrpc/connect/protocol";

/**
 * gRPC-Web's text mode (`application/grpc-web-text`, the default of Google's grpc-web
 * client), which connect-node answers 415, served as Envoy's grpc_web filter and tonic-web
 * serve it: the request body is base64 when its Content-Type says so, the response when the
 * request's Accept asks for it. In between, connect's binary gRPC-Web handler runs unchanged.
 */

const textContentType = /^application\/grpc-web-text(?:\+(?:proto|json(?:; ?charset=utf-?8)?))?$/i;
const textMediaRange = /^application\/grpc-web-text(?:\+(?:proto|json))?$/i;
const binaryContentType = /^application\/grpc-web(?:\+(?:proto|json(?:; ?charset=utf-?8)?))?$/i;

/** True for a request body in gRPC-Web's text mode: `application/grpc-web-text[+proto|+json]`. */
export function isGrpcWebText(contentType: string | null | undefined): boolean {
  return contentType != null && textContentType.test(contentType);
}

/** True when an Accept header asks for gRPC-Web's text mode (grpc-web's client sends it with every text request). */
export function acceptsGrpcWebText(accept: string | null | undefined): boolean {
  if (accept == null || !accept.includes("grpc-web-text")) return false;
  return accept.split(",").some((range) => textMediaRange.test(range.split(";")[0].trim()));
}

/**
 * Wraps one of connect's universal handlers (a ConnectRouter's `handlers`) so that it also
 * serves gRPC-Web's text mode; any other call passes through untouched.
 */
export function withGrpcWebText(handler: UniversalHandlerFn): UniversalHandlerFn {
  return async (request) => {
    const textRequest = isGrpcWebText(request.header.get("content-type"));
    const textResponse = acceptsGrpcWebText(request.header.get("accept"));
    if (!textRequest && !textResponse) return handler(request);
    const response = await handler(textRequest ? decodeGrpcWebTextRequest(request) : request);
    return textResponse ? encodeGrpcWebTextResponse(response) : response;
  };
}

/**
 * The binary gRPC-Web request inside a text one: the Content-Type without `-text`, no
 * Content-Length, and the body base64-decoded as it arrives. Invalid base64 fails reading the
 * body with INVALID_ARGUMENT, which connect's handler answers as the call's status.
 */
export function decodeGrpcWebTextRequest(request: UniversalServerRequest): UniversalServerRequest {
  const header = new Headers(request.header);
  const contentType = header.get("content-type") ?? "";
  header.set("content-type", contentType.replace(/^application\/grpc-web-text/i, "application/grpc-web"));
  header.delete("content-length");
  const { body } = request;
  if (!isByteStream(body)) return { ...request, header };
  return { ...request, header, body: decodeBase64Stream(body) };
}

/**
 * The text form of a binary gRPC-Web response: each body chunk (connect writes one per frame,
 * the trailer frame last) base64-encoded with its padding as it comes, as Envoy encodes each
 * frame, so that a browser decodes it at once; the Content-Type gets `-text`. Any other
 * response (415, 405, …) is returned as it is.
 */
export function encodeGrpcWebTextResponse(response: UniversalServerResponse): UniversalServerResponse {
  const contentType = response.header?.get("content-type");
  if (response.body === undefined || contentType == null || !binaryContentType.test(contentType)) return response;
  const header = new Headers(response.header);
  header.set("content-type", contentType.replace(/^application\/grpc-web/i, "application/grpc-web-text"));
  header.delete("content-length");
  return { ...response, header, body: mapChunks(response.body, encodeChunk) };
}

function isByteStream(body: UniversalServerRequest["body"]): body is AsyncIterable<Uint8Array> {
  return typeof body === "object" && body !== null && Symbol.asyncIterator in body;
}

function invalidBase64(detail: string): ConnectError {
  return new ConnectError(`invalid grpc-web-text request body (${detail})`, Code.InvalidArgument);
}

/**
 * Decodes a stream of base64 text, which may be several padded chunks one after the other
 * (as Envoy accepts): it is read in groups of four characters, a group that is not whole yet
 * waiting for the next chunk, and each padded group ending a run decoded on its own.
 */
async function* decodeBase64Stream(body: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  let carry: Buffer | undefined;
  for await (const chunk of body) {
    let text = asBuffer(chunk);
    if (carry !== undefined) {
      text = Buffer.concat([carry, text]);
      carry = undefined;
    }
    const whole = text.length - (text.length % 4);
    if (whole < text.length) carry = Buffer.from(text.subarray(whole));
    if (whole > 0) yield decodeGroups(text, whole);
  }
  if (carry !== undefined) throw invalidBase64("its length is not a multiple of 4");
}

const PAD = 0x3d; // "="
/** 1 for each character of the standard base64 alphabet (RFC 4648, section 4). */
const alphabet = new Uint8Array(256);
for (const c of "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") alphabet[c.charCodeAt(0)] = 1;

/** Decodes text[0, end), whole groups of four; padding may end any group, as in concatenated chunks. */
function decodeGroups(text: Buffer, end: number): Buffer {
  const runs: Buffer[] = [];
  let start = 0;
  for (let i = 0; i < end; i += 4) {
    const third = text[i + 2];
    const fourth = text[i + 3];
    if (alphabet[text[i]] === 0 || alphabet[text[i + 1]] === 0) throw invalidBase64("not base64");
    if (third === PAD ? fourth !== PAD : alphabet[third] === 0) throw invalidBase64("not base64");
    if (fourth === PAD) {
      runs.push(Buffer.from(text.toString("latin1", start, i + 4), "base64"));
      start = i + 4;
    } else if (alphabet[fourth] === 0) {
      throw invalidBase64("not base64");
    }
  }
  if (start < end) runs.push(Buffer.from(text.toString("latin1", start, end), "base64"));
  return runs.length === 1 ? runs[0] : Buffer.concat(runs);
}

function encodeChunk(chunk: Uint8Array): Uint8Array {
  return Buffer.from(asBuffer(chunk).toString("base64"), "latin1");
}

function asBuffer(chunk: Uint8Array): Buffer {
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

/**
 * The body with each chunk mapped, forwarding throw() and return() to the original iterator:
 * connect-node's response writer calls them to tell the handler about a write error or the end.
 */
function mapChunks(body: AsyncIterable<Uint8Array>, map: (chunk: Uint8Array) => Uint8Array): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
      const it = body[Symbol.asyncIterator]();
      const mapped = (result: IteratorResult<Uint8Array>): IteratorResult<Uint8Array> =>
        result.done === true ? result : { done: false, value: map(result.value) };
      return {
        next: async () => mapped(await it.next()),
        throw: async (reason?: unknown) => (it.throw ? mapped(await it.throw(reason)) : Promise.reject(reason)),
        return: async (value?: unknown) => (it.return ? mapped(await it.return(value)) : { done: true, value }),
      };
    },
  };
}
