/** The wire protocol a call arrived on, as SPEC section 6 names them; set by the door it came through. */
export type Protocol = "grpc" | "grpc-web" | "connect" | "rest";

/** Which part of the gateway served a call: the REST transcoder, a unary fast path, or connect-node. */
export type Door = "rest" | "fast-path" | "connect-node";
