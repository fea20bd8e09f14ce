import type { DescMessage } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { CallDoor } from "../../call/entry.js";
import type { CallRecord } from "../../call/record.js";
import {
  codeToHttpStatus,
  compressionNegotiate,
  contentTypeUnaryJson,
  contentTypeUnaryProto,
  contentTypeUnaryRegExp,
  createMethodSerializationLookup,
  errorToJsonBytes,
  headerUnaryAcceptEncoding,
  headerUnaryEncoding,
  invokeUnaryImplementation,
  parseConnectTimeout,
  trailerMux,
  type MethodSerializationLookup,
} from "../../connect-internals.js";
import { startNodeCall } from "../../node-http/handler-context.js";
import { readRequestBody, type NodeRequest } from "../../node-http/request.js";
import { canRespond, endResponse, setResponseHeaders, type NodeResponse } from "../../node-http/response.js";
import { headerValue, unaryHandlerOptions, unaryMethodsByPath, type UnaryDoorOptions, type UnarySpec } from "./unary-methods.js";

interface UnaryMethod {
  spec: UnarySpec;
  serialization: MethodSerializationLookup<DescMessage, DescMessage>;
}

/**
 * Connect unary POST (JSON or protobuf) served straight on the Node.js request, as
 * grpc-unary.ts does for gRPC: connect-node's general pipeline (async iterables through every
 * step) costs more CPU than all the rest of the call. This
 * follows connect's own unary handler step by step — the same options and defaults as
 * connectNodeAdapter (gzip and brotli both ways, responses compressed from 1 KiB),
 * serialization, timeout header, error body and status, `trailer-` headers — and runs the same
 * interceptors and implementation. Anything else (GET, streaming, other content types) is left
 * to connect-node.
 */
export function createConnectUnaryDoor(options: UnaryDoorOptions): CallDoor {
  const opt = unaryHandlerOptions(options);
  const methods = new Map<string, UnaryMethod>();
  for (const [path, spec] of unaryMethodsByPath(options.services)) {
    methods.set(path, { spec, serialization: createMethodSerializationLookup(spec.method, opt.binaryOptions, opt.jsonOptions, opt) });
  }

  async function serve({ spec, serialization }: UnaryMethod, binary: boolean, req: NodeRequest, res: NodeResponse, record?: CallRecord, refusal?: ConnectError) {
    const timeout = parseConnectTimeout(headerValue(req.headers["connect-timeout-ms"]), opt.maxTimeoutMs);
    const call = startNodeCall(req, res, {
      method: spec.method,
      protocolName: "connect",
      requestMethod: "POST",
      timeoutMs: timeout.timeoutMs,
      shutdownSignal: opt.shutdownSignal,
      record,
    });
    const { context } = call;
    context.responseHeader.set("content-type", binary ? contentTypeUnaryProto : contentTypeUnaryJson);
    const compression = compressionNegotiate(
      opt.acceptCompression,
      headerValue(req.headers["content-encoding"]),
      headerValue(req.headers["accept-encoding"]),
      headerUnaryAcceptEncoding,
    );
    let status = 200;
    let body: Uint8Array;
    try {
      if (refusal !== undefined) throw refusal;
      if (compression.error) throw compression.error;
      if (timeout.error) throw timeout.error;
      let bytes = await readRequestBody(req, opt.readMaxBytes, connectOverLimit);
      if (compression.request) bytes = await compression.request.decompress(bytes, opt.readMaxBytes);
      const input = serialization.getI(binary).parse(bytes);
      const output = await invokeUnaryImplementation(spec, context, input, opt.interceptors);
      body = serialization.getO(binary).serialize(output);
      record?.answered({ code: 0, status });
    } catch (e) {
      const error = call.fail(e);
      status = codeToHttpStatus(error.code);
      record?.answered({ code: error.code, status, message: error.rawMessage });
      context.responseHeader.set("content-type", contentTypeUnaryJson);
      error.metadata.forEach((value, name) => context.responseHeader.set(name, value));
      body = errorToJsonBytes(error, opt.jsonOptions);
    } finally {
      call.complete();
    }
    if (compression.response && body.byteLength >= opt.compressMinBytes) {
      body = await compression.response.compress(body);
      context.responseHeader.set(headerUnaryEncoding, compression.response.name);
    }
    if (!canRespond(res)) return;
    setResponseHeaders(res, trailerMux(context.responseHeader, context.responseTrailer));
    endResponse(res, status, undefined, body);
  }

  return {
    match(req, res) {
      if (req.method !== "POST") return undefined;
      const method = methods.get(req.url ?? "");
      if (method === undefined) return undefined;
      const type = req.headers["content-type"];
      if (type === undefined || !contentTypeUnaryRegExp.test(type)) return undefined;
      const binary = type.toLowerCase() === contentTypeUnaryProto;
      return {
        protocol: "connect",
        door: "fast-path",
        method: method.spec.method,
        serve: (record, refusal) => void serve(method, binary, req, res, record, refusal).catch(() => res.destroy()),
      };
    },
  };
}

/** connect's own wording for a request over readMaxBytes, with the declared size when there is one. */
function connectOverLimit(readMaxBytes: number, declared?: number): ConnectError {
  const size = declared === undefined ? "" : ` ${declared}`;
  return new ConnectError(`message size${size} is larger than configured readMaxBytes ${readMaxBytes}`, Code.ResourceExhausted);
}
