import type { ContextValues } from "@connectrpc/connect";
import { kHttpExchange } from "../transcoding/http-exchange.js";

/** The wire protocol a call arrived on. */
export type CallProtocol = "grpc" | "grpc-web" | "connect" | "rest";

const grpcContentType = /^application\/grpc(-web)?/i;

/**
 * The protocol of a call, as an interceptor sees it: REST when the transcoder put its
 * HttpExchange in the context values; otherwise the request's content type tells gRPC and
 * gRPC-Web apart from Connect (whose GET requests have none).
 */
export function protocolOf(request: { readonly header: Headers; readonly contextValues: ContextValues }): CallProtocol {
  if (request.contextValues.get(kHttpExchange) !== undefined) return "rest";
  const match = grpcContentType.exec(request.header.get("content-type") ?? "");
  if (match === null) return "connect";
  return match[1] === undefined ? "grpc" : "grpc-web";
}
