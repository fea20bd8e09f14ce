import { Code, ConnectError } from "@connectrpc/connect";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import type { Protocol } from "../call/protocol.js";
import type { CallRecord } from "../call/record.js";
import { respecGrpcMessage } from "./grpc-message.js";
import {
  codeFromHttpStatus,
  endStreamFlag,
  endStreamFromJson,
  errorFromJsonBytes,
  findTrailerError,
  trailerFlag,
  trailerParse,
  type UniversalServerResponse,
} from "../connect-internals.js";

/**
 * The response with its outcome recorded once its last bytes have gone: connect-node answers
 * some failures (a body it cannot decode, an envelope over the limit, a bad deadline) before
 * any interceptor runs, so the outcome is read from what the caller gets, in each protocol's
 * own form — gRPC's trailers, gRPC-Web's trailer frame, Connect's error body or end-stream message.
 */
export function observeOutcome(response: UniversalServerResponse, protocol: Protocol, call: CallRecord): UniversalServerResponse {
  const { status } = response;
  const header = response.header ?? new Headers();
  const record = (error: ConnectError | undefined) =>
    call.answered(error === undefined ? { code: 0, status } : { code: error.code, status, message: error.rawMessage });
  if (status !== 200 && !(protocol === "connect" && isUnaryConnect(header))) {
    record(new ConnectError(`HTTP ${status}`, codeFromHttpStatus(status)));
    return response;
  }
  let last: Uint8Array | undefined;
  const settle = async () => {
    if (protocol === "grpc") {
      record(findTrailerError(response.trailer ?? header) ?? findTrailerError(header));
      respecGrpcMessage(response.trailer);
      return;
    }
    if (protocol === "grpc-web") {
      const trailer = last !== undefined && last[0] & trailerFlag ? trailerParse(await envelopeData(last, header.get("grpc-encoding"))) : header;
      return record(findTrailerError(trailer));
    }
    if (isUnaryConnect(header)) {
      if (status === 200) return record(undefined);
      const bytes = last === undefined ? new Uint8Array(0) : await decompress(last, header.get("content-encoding"));
      return record(errorFromJsonBytes(bytes, undefined, new ConnectError(`HTTP ${status}`, codeFromHttpStatus(status))));
    }
    const end = last !== undefined && last[0] & endStreamFlag ? endStreamFromJson(await envelopeData(last, header.get("connect-content-encoding"))) : undefined;
    record(end === undefined ? new ConnectError("the stream ended without its end-stream message", Code.Unknown) : end.error);
  };
  const body = response.body;
  if (body === undefined || body instanceof Uint8Array) {
    if (body instanceof Uint8Array) last = body;
    void settle();
    return response;
  }
  return {
    ...response,
    body: (async function* () {
      // The trailer frame or end-stream message is the last chunk: connect joins each envelope into one.
      for await (const chunk of body) {
        last = chunk;
        yield chunk;
      }
      await settle();
    })(),
  };
}

function isUnaryConnect(header: Headers): boolean {
  const type = header.get("content-type") ?? "";
  return !type.startsWith("application/connect+");
}

/** An envelope's payload, decompressed when its flag says so. */
function envelopeData(envelope: Uint8Array, encoding: string | null): Promise<Uint8Array> {
  const data = envelope.subarray(5);
  return envelope[0] & 0b1 ? decompress(data, encoding) : Promise.resolve(data);
}

function decompress(bytes: Uint8Array, encoding: string | null): Promise<Uint8Array> {
  const compression = [compressionGzip, compressionBrotli].find((c) => c.name === encoding);
  return compression === undefined ? Promise.resolve(bytes) : compression.decompress(bytes, 1024 * 1024);
}
