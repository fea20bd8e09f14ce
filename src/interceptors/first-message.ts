/**
 * The messages of a streaming request, `first` called with the first one before it is handed
 * on: how an interceptor looks at a server-streaming call's single request message. A `first`
 * that throws fails the call.
 */
export async function* withFirst<T>(messages: AsyncIterable<T>, first: (message: T) => void): AsyncIterable<T> {
  let seen = false;
  for await (const message of messages) {
    if (!seen) first(message);
    seen = true;
    yield message;
  }
}
