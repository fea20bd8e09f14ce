/**
 * Every use of connect's `@private` protocol exports, in one file, so that an upgrade of
 * @connectrpc/connect breaks here and nowhere else. Each door that relies on them is proved
 * against connect-node's public path by a differential test (test/e2e/fast-path-equivalence.test.ts).
 */
export {
  compressionNegotiate,
  createMethodSerializationLookup,
  encodeEnvelope,
  envelopeCompress,
  envelopeDecompress,
  invokeUnaryImplementation,
  validateUniversalHandlerOptions,
  type MethodSerializationLookup,
  type UniversalHandler,
  type UniversalServerRequest,
  type UniversalServerResponse,
} from "@connectrpc/connect/protocol";
export {
  codeFromHttpStatus,
  codeToHttpStatus,
  codeToString,
  contentTypeUnaryJson,
  contentTypeUnaryProto,
  contentTypeUnaryRegExp,
  endStreamFlag,
  endStreamFromJson,
  errorFromJsonBytes,
  errorToJsonBytes,
  headerUnaryAcceptEncoding,
  headerUnaryEncoding,
  parseTimeout as parseConnectTimeout,
  trailerMux,
} from "@connectrpc/connect/protocol-connect";
export {
  findTrailerError,
  grpcStatusOk,
  headerAcceptEncoding as headerGrpcAcceptEncoding,
  headerEncoding as headerGrpcEncoding,
  parseTimeout as parseGrpcTimeout,
  setTrailerStatus,
} from "@connectrpc/connect/protocol-grpc";
export { trailerFlag, trailerParse } from "@connectrpc/connect/protocol-grpc-web";
