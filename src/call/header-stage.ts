import { Code, ConnectError } from "@connectrpc/connect";
import type { CallRecord } from "./record.js";

/**
 * A check on a call's headers, run before any byte of its body is read (authentication is
 * one): it throws a ConnectError to refuse the call, or fills the record (the principal).
 */
export type HeaderCheck = (call: CallRecord) => void | Promise<void>;

/** The refusal, if any check refused; synchronous when every check is. */
export type HeaderStage = (call: CallRecord) => ConnectError | undefined | Promise<ConnectError | undefined>;

/**
 * Runs the checks in order; the first refusal wins. A check that throws anything but a
 * ConnectError is a bug: it refuses the call as INTERNAL, the error reported to `onBug`.
 */
export function createHeaderStage(checks: readonly HeaderCheck[], onBug: (error: unknown, call: CallRecord) => void): HeaderStage {
  const refusal = (error: unknown, call: CallRecord): ConnectError => {
    if (error instanceof ConnectError) return error;
    onBug(error, call);
    return new ConnectError("internal error", Code.Internal);
  };
  async function runFrom(index: number, call: CallRecord, pending: Promise<void>): Promise<ConnectError | undefined> {
    try {
      await pending;
      for (let i = index; i < checks.length; i++) await checks[i](call);
      return undefined;
    } catch (error) {
      return refusal(error, call);
    }
  }
  return (call) => {
    for (let i = 0; i < checks.length; i++) {
      try {
        const result = checks[i](call);
        if (result instanceof Promise) return runFrom(i + 1, call, result);
      } catch (error) {
        return refusal(error, call);
      }
    }
    return undefined;
  };
}
