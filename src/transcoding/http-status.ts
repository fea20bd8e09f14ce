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
export function httpStatusFromCode(code: Code): number {
  return statusByCode[code] ?? 500;
}

/**
 * The HTTP status for an error: adapters put `{ httpStatus }` on the cause when the code alone
 * doesn't fix it (413 for a body over the limit is RESOURCE_EXHAUSTED); else the code's status.
 */
export function httpStatusOf(error: ConnectError): number {
  const cause: unknown = error.cause;
  if (typeof cause == "object" && cause !== null && "httpStatus" in cause) {
    const status = (cause as { httpStatus: unknown }).httpStatus;
    if (typeof status == "number" && Number.isInteger(status) && status >= 100 && status <= 599) {
      return status;
    }
  }
  return httpStatusFromCode(error.code);
}
