import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { invokeUnaryImplementation } from "@connectrpc/connect/protocol";
import { grpcStatusOk, parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { startNodeCall } from "../node-http/handler-context.js";
import { readRequestBody } from "../node-http/request.js";
import { createMessageCodec, type MessageCodec } from "./message-codec.js";
import { headerValue, unaryMethodsByPath, type FastPathHandler, type ServedService, type UnarySpec } from "./unary-methods.js";

export interface GrpcUnaryOptions {
  services: ServedService[];
  interceptors: Interceptor[];
  /** Largest request message in bytes. */
  readMaxBytes: number;
  shutdownSignal?: AbortSignal;
}

/**
 * The common case of gRPC — a unary call, one uncompressed protobuf message over HTTP/2 —
 * served straight on the Node.js stream. connect-node's general pipeline (async iterables
 * through every step) costs several times more CPU per call than the rest of the gateway;
 * this runs the same interceptors and implementation (invokeUnaryImplementation) and answers
 * the same headers, messages and status trailers. Anything else (streaming methods,
 * compression, JSON codec, gRPC-Web) is left to connect-node.
 */
export function createGrpcUnaryHandler(options: GrpcUnaryOptions): FastPathHandler {
  const methods = new Map<string, UnaryMethod>();
  for (const [path, spec] of unaryMethodsByPath(options.services)) {
    methods.set(path, { spec, input: createMessageCodec(spec.method.input), output: createMessageCodec(spec.method.output) });
  }

  async function serve({ spec, input: inputCodec, output: outputCodec }: UnaryMethod, req: Http2ServerRequest, res: Http2ServerResponse) {
    const timeout = parseTimeout(headerValue(req.headers["grpc-timeout"]), Number.MAX_SAFE_INTEGER);
    const call = startNodeCall(req, res, {
      method: spec.method,
      protocolName: "grpc",
      requestMethod: "POST",
      timeoutMs: timeout.timeoutMs,
      shutdownSignal: options.shutdownSignal,
    });
    const { context } = call;
    let body: Uint8Array | undefined;
    let trailer = context.responseTrailer;
    try {
      if (timeout.error) throw timeout.error;
      const envelope = await readRequestBody(req, options.readMaxBytes + 5);
      const input = inputCodec.decode(unwrapEnvelope(envelope));
      const output = await invokeUnaryImplementation(spec, context, input, options.interceptors);
      body = wrapEnvelope(outputCodec.encode(output));
      trailer.set("grpc-status", grpcStatusOk);
    } catch (e) {
      trailer = setTrailerStatus(new Headers(trailer), call.fail(e));
    } finally {
      call.complete();
    }
    if (res.destroyed || res.headersSent) return;
    context.responseHeader.forEach((value, name) => res.setHeader(name, value));
    res.setHeader("content-type", "application/grpc");
    const trailers: Record<string, string> = {};
    trailer.forEach((value, name) => (trailers[name] = value));
    res.addTrailers(trailers);
    res.writeHead(200);
    if (body) res.end(body);
    else res.end();
  }

  return (req, res) => {
    if (req.httpVersionMajor !== 2 || req.method !== "POST") return false;
    const method = methods.get(req.url ?? "");
    if (method === undefined) return false;
    const type = req.headers["content-type"];
    if (type !== "application/grpc" && type !== "application/grpc+proto") return false;
    const encoding = req.headers["grpc-encoding"];
    if (encoding !== undefined && encoding !== "identity") return false;
    const h2res = res as Http2ServerResponse;
    serve(method, req as Http2ServerRequest, h2res).catch(() => h2res.stream.close());
    return true;
  };
}

interface UnaryMethod {
  spec: UnarySpec;
  input: MessageCodec;
  output: MessageCodec;
}

/** The one message of a unary request: a 5-byte prefix (flags, big-endian length) and the bytes. */
function unwrapEnvelope(data: Uint8Array): Uint8Array {
  if (data.byteLength < 5) throw new ConnectError("protocol error: missing the request message", Code.Unimplemented);
  if ((data[0] & 0b1) !== 0) throw new ConnectError("protocol error: a compressed message without grpc-encoding", Code.Internal);
  const length = ((data[1] << 24) | (data[2] << 16) | (data[3] << 8) | data[4]) >>> 0;
  if (data.byteLength !== 5 + length) {
    throw new ConnectError(data.byteLength < 5 + length ? "protocol error: incomplete message" : "protocol error: more than one message for a unary method", Code.Unimplemented);
  }
  return data.subarray(5);
}

function wrapEnvelope(message: Uint8Array): Uint8Array {
  const out = Buffer.allocUnsafe(5 + message.byteLength);
  out[0] = 0;
  out.writeUInt32BE(message.byteLength, 1);
  out.set(message, 5);
  return out;
}
