import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import type { CallDoor } from "../../call/entry.js";
import type { CallRecord } from "../../call/record.js";
import {
  compressionNegotiate,
  encodeEnvelope,
  envelopeCompress,
  envelopeDecompress,
  grpcStatusOk,
  headerGrpcAcceptEncoding,
  headerGrpcEncoding,
  invokeUnaryImplementation,
  parseGrpcTimeout,
  setTrailerStatus,
} from "../../connect-internals.js";
import { startNodeCall } from "../../node-http/handler-context.js";
import { respecGrpcMessage } from "../grpc-message.js";
import { createMessageCodec, type MessageCodec } from "./message-codec.js";
import { headerValue, unaryHandlerOptions, unaryMethodsByPath, type UnaryDoorOptions, type UnarySpec } from "./unary-methods.js";

const contentTypeProto = "application/grpc+proto";

/**
 * The common case of gRPC — a unary call with one protobuf message over HTTP/2 — served
 * straight on the Node.js stream, following connect's gRPC handler step by step with
 * connectNodeAdapter's defaults (gzip and brotli both ways, answers compressed from 1 KiB when
 * the caller accepts it, the same status trailers and error wording), and running the same
 * interceptors and implementation. connect-node's general pipeline, async iterables through
 * every step, costs several times the CPU per call. Anything else (streaming, the JSON codec,
 * gRPC-Web) is left to connect-node.
 */
export function createGrpcUnaryDoor(options: UnaryDoorOptions): CallDoor {
  const opt = unaryHandlerOptions(options);
  const methods = new Map<string, UnaryMethod>();
  for (const [path, spec] of unaryMethodsByPath(options.services)) {
    methods.set(path, { spec, input: createMessageCodec(spec.method.input), output: createMessageCodec(spec.method.output) });
  }

  async function serve({ spec, input: inputCodec, output: outputCodec }: UnaryMethod, req: Http2ServerRequest, res: Http2ServerResponse, record?: CallRecord, refusal?: ConnectError) {
    const timeout = parseGrpcTimeout(headerValue(req.headers["grpc-timeout"]), opt.maxTimeoutMs);
    const call = startNodeCall(req, res, {
      method: spec.method,
      protocolName: "grpc",
      requestMethod: "POST",
      timeoutMs: timeout.timeoutMs,
      shutdownSignal: opt.shutdownSignal,
      record,
    });
    const { context } = call;
    const compression = compressionNegotiate(
      opt.acceptCompression,
      headerValue(req.headers["grpc-encoding"]),
      headerValue(req.headers["grpc-accept-encoding"]),
      headerGrpcAcceptEncoding,
    );
    if (compression.response) context.responseHeader.set(headerGrpcEncoding, compression.response.name);
    let body: Uint8Array | undefined;
    let trailer = context.responseTrailer;
    try {
      if (refusal !== undefined) throw refusal;
      if (compression.error) throw compression.error;
      if (timeout.error) throw timeout.error;
      let envelope = await readOneEnvelope(req, opt.readMaxBytes);
      // Most calls are uncompressed both ways: connect's async steps only when they have work to do.
      if (envelope.flags & 1) envelope = await envelopeDecompress(envelope, compression.request, opt.readMaxBytes);
      const input = decodeInput(inputCodec, envelope.data);
      const output = await invokeUnaryImplementation(spec, context, input, opt.interceptors);
      const data = outputCodec.encode(output);
      if (compression.response !== null && data.byteLength >= opt.compressMinBytes) {
        const answer = await envelopeCompress({ flags: 0, data }, compression.response, opt.compressMinBytes);
        body = encodeEnvelope(answer.flags, answer.data);
      } else {
        body = encodeEnvelope(0, data);
      }
      trailer.set("grpc-status", grpcStatusOk);
      record?.answered({ code: 0, status: 200 });
    } catch (e) {
      const error = call.fail(e);
      trailer = setTrailerStatus(new Headers(trailer), error);
      respecGrpcMessage(trailer);
      record?.answered({ code: error.code, status: 200, message: error.rawMessage });
    } finally {
      call.complete();
    }
    if (res.destroyed || res.headersSent) return;
    context.responseHeader.forEach((value, name) => res.setHeader(name, value));
    res.setHeader("content-type", contentTypeProto);
    const trailers: Record<string, string> = {};
    trailer.forEach((value, name) => (trailers[name] = value));
    res.addTrailers(trailers);
    if (body) {
      // Headers, message and trailers all go as `end` writes them: when it waits for the turn's
      // appends (the call's journal entry), headers written before it would go out on their own.
      res.statusCode = 200;
      res.end(body);
    } else {
      // Without a message, `end` alone would send the headers as the end of the stream, and no trailers.
      res.writeHead(200);
      res.end();
    }
  }

  return {
    match(req, res) {
      if (req.httpVersionMajor !== 2 || req.method !== "POST") return undefined;
      const method = methods.get(req.url ?? "");
      if (method === undefined) return undefined;
      const type = req.headers["content-type"];
      if (type !== "application/grpc" && type !== contentTypeProto) return undefined;
      const h2res = res as Http2ServerResponse;
      return {
        protocol: "grpc",
        door: "fast-path",
        method: method.spec.method,
        serve: (record, refusal) => void serve(method, req as Http2ServerRequest, h2res, record, refusal).catch(() => h2res.stream.close()),
      };
    },
  };
}

/** The request message, or connect's own error for bytes that do not decode. */
function decodeInput(codec: MessageCodec, bytes: Uint8Array) {
  try {
    return codec.decode(bytes);
  } catch (e) {
    if (e instanceof ConnectError) throw e;
    throw new ConnectError(`parse binary: ${e instanceof Error ? e.message : String(e)}`, Code.Internal);
  }
}

interface UnaryMethod {
  spec: UnarySpec;
  input: MessageCodec;
  output: MessageCodec;
}

/**
 * Reads the one message of a unary request, with connect's errors: a declared length over
 * `readMaxBytes` fails at once, before the message is read; none, a cut one or a second one is
 * a protocol error.
 */
function readOneEnvelope(req: Http2ServerRequest, readMaxBytes: number): Promise<{ flags: number; data: Uint8Array }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let expected = -1;
    const fail = (error: ConnectError) => {
      cleanup();
      req.resume();
      reject(error);
    };
    const onData = (chunk: Buffer) => {
      total += chunk.byteLength;
      chunks.push(chunk);
      if (expected < 0 && total >= 5) {
        const head = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
        expected = 5 + head.readUInt32BE(1);
        if (expected - 5 > readMaxBytes) return fail(new ConnectError(`message size ${expected - 5} is larger than configured readMaxBytes ${readMaxBytes}`, Code.ResourceExhausted));
      }
      if (expected >= 0 && total > expected) return fail(new ConnectError("protocol error: received extra input message for unary method", Code.Unimplemented));
    };
    const onEnd = () => {
      cleanup();
      if (total === 0) return reject(new ConnectError("protocol error: missing input message for unary method", Code.Unimplemented));
      if (total < expected || expected < 0) return reject(new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument));
      const data = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, total);
      resolve({ flags: data[0], data: data.subarray(5) });
    };
    const onClose = () => {
      cleanup();
      reject(new ConnectError("the client closed the connection", Code.Canceled));
    };
    const cleanup = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("close", onClose);
      req.off("error", onClose);
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("close", onClose);
    req.on("error", onClose);
  });
}
