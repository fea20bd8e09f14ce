import type { IncomingHttpHeaders } from "node:http";
import { util, type Dispatcher } from "undici";
import type { CallBudget } from "./call-budget.js";

/** What the retry loop reads of an answer, whether buffered or streamed. */
export interface UpstreamAnswer {
  statusCode: number;
  headers: IncomingHttpHeaders;
  body: { text(): Promise<string>; dump(): Promise<unknown> };
}

/**
 * undici's `request()` without its Readable body: the answer is collected by a dispatch
 * handler. For unary calls, whose answer is read whole anyway; measured here it costs about
 * 15% less client CPU per call than `request()` followed by `body.text()`.
 */
export function bufferedRequest(dispatcher: Dispatcher, options: Dispatcher.DispatchOptions, budget: CallBudget): Promise<UpstreamAnswer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let statusCode = 0;
    let headers: IncomingHttpHeaders = {};
    let onAbort: (() => void) | undefined;
    const settle = () => {
      if (onAbort) budget.off("abort", onAbort);
    };
    dispatcher.dispatch(options, {
      onConnect(abort: (reason?: Error) => void) {
        if (budget.aborted) return abort(budget.reason);
        onAbort = () => abort(budget.reason);
        budget.once("abort", onAbort);
      },
      onHeaders(status: number, rawHeaders: Buffer[]) {
        statusCode = status;
        headers = util.parseHeaders(rawHeaders) as IncomingHttpHeaders;
        return true;
      },
      onData(chunk: Buffer) {
        chunks.push(chunk);
        return true;
      },
      onComplete() {
        settle();
        const bytes = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
        resolve({ statusCode, headers, body: { text: async () => bytes.toString("utf8"), dump: async () => undefined } });
      },
      onError(error: Error) {
        settle();
        reject(error);
      },
    } as Dispatcher.DispatchHandler);
  });
}
