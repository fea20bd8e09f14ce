import { Code, type ConnectError } from "@connectrpc/connect";
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
  call: { responseHeader: Headers; exchange?: HttpExchange },
) => ErrorResponse;

/** The default error response: status httpStatusOf(error), body `{"code":"not_found","message":"..."}`. */
export const writeJsonError: WriteError = (error) => ({
  status: httpStatusOf(error),
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ code: codeName(error.code), message: error.rawMessage }),
});

/** The snake_case name of a Code, as the Connect protocol spells it ("not_found"). */
export function codeName(code: Code): string {
  const name = Code[code] as string | undefined;
  if (name === undefined) return String(code);
  return name[0].toLowerCase() + name.slice(1).replace(/[A-Z]/g, (c) => "_" + c.toLowerCase());
}
