import { Code, type ConnectError } from "@connectrpc/connect";

const statusByCode: Record<Code, number> = {
  [Code.Canceled]: 499,
  [Code.Unknown]: 500,
  [Code.InvalidArgument]: 400,
  [Code.DeadlineExceeded]: 504,
  [Code.NotFound]: 404,
  [Code.AlreadyExists]: 409,
  [Code.PermissionDenied]: 403,
  [Code.ResourceExhausted]: 429,
  [Code.FailedPrecondition]: 400,
  [Code.Aborted]: 409,
  [Code.OutOfRange]: 400,
  [Code.Unimplemented]: 501,
  [Code.Internal]: 500,
  [Code.Unavailable]: 503,
  [Code.DataLoss]: 500,
  [Code.Unauthenticated]: 401,
};

/** The HTTP status for a Code, as grpc-gateway maps them. */
function httpStatusFromCode(code: Code): number {
  return statusByCode[code] ?? 500;
}

/**
 * A cause that fixes an error's REST status where its code alone does not: 413 for a body over
 * the limit (RESOURCE_EXHAUSTED would be 429), 405 for a wrong method, a provider's own 4xx.
 */
export class HttpStatusHint extends Error {
  override name = "HttpStatusHint";

  constructor(
    message: string,
    readonly httpStatus: number,
  ) {
    super(message);
  }
}

/** The HTTP status for an error: its cause's hint, else the code's status in the table above. */
export function httpStatusOf(error: ConnectError): number {
  return error.cause instanceof HttpStatusHint ? error.cause.httpStatus : httpStatusFromCode(error.code);
}
