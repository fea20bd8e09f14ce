import type { IncomingHttpHeaders } from "node:http";
import { util, type Dispatcher } from "undici";
import { answerTooLarge, declaredTooLarge, encodingRefusal, ERROR_BODY_BYTES } from "./answer-body.js";
import type { CallBudget } from "./call-budget.js";

/** An answer read whole: a 2xx body within the bound, or the first ERROR_BODY_BYTES of another. */
export interface BufferedAnswer {
  statusCode: number;
  headers: IncomingHttpHeaders;
  bytes: Buffer;
}

/**
 * undici's `request()` without its Readable body: the answer is collected by a dispatch
 * handler. For unary calls, whose answer is read whole anyway: it costs less client CPU per
 * call than `request()` followed by `body.text()` (test/bench/README.md).
 *
 * A 2xx answer past `maxAnswerBytes` (declared or counted), or in a content coding, rejects
 * with an AnswerError and aborts the request, which closes its connection: nothing more is
 * read. Another status's body is kept up to ERROR_BODY_BYTES and the rest is not read.
 */
export function bufferedRequest(
  dispatcher: Dispatcher,
  options: Dispatcher.DispatchOptions,
  budget: CallBudget,
  maxAnswerBytes: number,
): Promise<BufferedAnswer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    let limit = maxAnswerBytes;
    let statusCode = 0;
    let headers: IncomingHttpHeaders = {};
    // An error body cut at its bound: the abort that follows ends the call with what was kept.
    let truncated = false;
    let abort!: (reason?: Error) => void;
    let onAbort: (() => void) | undefined;
    const settle = () => {
      if (onAbort) budget.off("abort", onAbort);
    };
    const answer = (): BufferedAnswer => ({ statusCode, headers, bytes: chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, length) });
    dispatcher.dispatch(options, {
      onConnect(abortRequest: (reason?: Error) => void) {
        abort = abortRequest;
        if (budget.aborted) return abortRequest(budget.reason);
        onAbort = () => abortRequest(budget.reason);
        budget.once("abort", onAbort);
      },
      onHeaders(status: number, rawHeaders: Buffer[]) {
        statusCode = status;
        headers = util.parseHeaders(rawHeaders) as IncomingHttpHeaders;
        if (status < 200 || status >= 300) {
          limit = encodingRefusal(headers) === undefined ? ERROR_BODY_BYTES : 0;
          return true;
        }
        const refusal = encodingRefusal(headers) ?? (declaredTooLarge(headers, limit) ? answerTooLarge(limit) : undefined);
        if (refusal === undefined) return true;
        abort(refusal);
        return false;
      },
      onData(chunk: Buffer) {
        length += chunk.length;
        if (length <= limit) {
          chunks.push(chunk);
          return true;
        }
        if (statusCode >= 200 && statusCode < 300) {
          abort(answerTooLarge(limit));
          return false;
        }
        chunks.push(chunk.subarray(0, chunk.length - (length - limit)));
        length = limit;
        truncated = true;
        abort();
        return false;
      },
      onComplete() {
        settle();
        resolve(answer());
      },
      onError(error: Error) {
        settle();
        if (truncated && !budget.aborted) resolve(answer());
        else reject(error);
      },
    } as Dispatcher.DispatchHandler);
  });
}
