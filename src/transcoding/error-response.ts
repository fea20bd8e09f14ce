import type { ConnectError, ContextValues } from "@connectrpc/connect";
import { codeToString } from "../connect-internals.js";
import type { HttpExchange } from "./http-exchange.js";
import { httpStatusOf } from "./http-status.js";

/** What a REST error response consists of; the handler context's response headers are added. */
export interface ErrorResponse {
  status: number;
  headers?: Record<string, string>;
  body: string | Uint8Array;
}

export type WriteError = (
  error: ConnectError,
  /** The call's context values are absent when the request was no call (a wrong HTTP method). */
  call: { responseHeader: Headers; contextValues?: ContextValues; exchange?: HttpExchange },
) => ErrorResponse;

/** The default error response: status httpStatusOf(error), body `{"code":"not_found","message":"..."}`. */
export const writeJsonError: WriteError = (error) => ({
  status: httpStatusOf(error),
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ code: codeToString(error.code), message: error.rawMessage }),
});
