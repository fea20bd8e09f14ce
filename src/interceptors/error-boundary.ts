import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "../logging/logger.js";

/** Codes that say the gateway or its provider failed, rather than the caller's request. */
const SERVER_SIDE = new Set([Code.Unknown, Code.Internal, Code.Unavailable, Code.DeadlineExceeded, Code.DataLoss]);

/**
 * Lets only ConnectErrors reach a caller: anything else is a bug, logged here in full and
 * answered as INTERNAL "internal error", so no message, stack trace or path of ours leaks.
 * Every failed call is logged once, without bodies: warn when the gateway or provider failed,
 * info when the request was refused.
 */
export function createErrorBoundaryInterceptor(logger: Logger): Interceptor {
  const contain = (error: unknown, procedure: string): ConnectError => {
    if (error instanceof ConnectError) {
      logger[SERVER_SIDE.has(error.code) ? "warn" : "info"]({ procedure, code: Code[error.code], error: error.rawMessage }, "call failed");
      return error;
    }
    logger.error({ err: error, procedure }, "unexpected error in a call");
    return new ConnectError("internal error", Code.Internal);
  };
  return (next) => async (request) => {
    const procedure = `/${request.service.typeName}/${request.method.name}`;
    try {
      const response = await next(request);
      if (!response.stream) return response;
      return { ...response, message: containStream(response.message, (error) => contain(error, procedure)) };
    } catch (error) {
      throw contain(error, procedure);
    }
  };
}

async function* containStream<T>(messages: AsyncIterable<T>, contain: (error: unknown) => ConnectError): AsyncIterable<T> {
  try {
    yield* messages;
  } catch (error) {
    throw contain(error);
  }
}
