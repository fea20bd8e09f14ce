/** The rejection of a delivery its signal stopped, with the signal's reason as the cause. */
export function abortedError(signal: AbortSignal, what: string): Error {
  return new Error(`${what} was aborted`, { cause: signal.reason });
}

/**
 * Settles as `work` does, or rejects as soon as `signal` aborts, whichever comes first. The
 * work itself is not cancelled (a sink whose client cannot be stopped mid-request); a
 * rejection it gives after the abort is swallowed, so that it is never unhandled.
 */
export function untilAborted<T>(work: Promise<T>, signal: AbortSignal, what: string): Promise<T> {
  if (signal.aborted) {
    work.catch(() => {});
    return Promise.reject(abortedError(signal, what));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      work.catch(() => {});
      reject(abortedError(signal, what));
    };
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}
