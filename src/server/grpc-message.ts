/**
 * `grpc-message` percent-encoded as the gRPC spec says: only bytes outside printable ASCII, and
 * `%`. connect encodes it with encodeURIComponent, and grpc-js decodes with decodeURI, which
 * leaves `%3A` and its kind in place, so `:` in a description reached grpc-js callers mangled.
 */
export function respecGrpcMessage(headers: Headers | undefined): void {
  const value = headers?.get("grpc-message");
  if (value === null || value === undefined) return;
  let text: string;
  try {
    text = decodeURIComponent(value);
  } catch {
    return;
  }
  headers!.set("grpc-message", encodeGrpcMessage(text));
}

function encodeGrpcMessage(text: string): string {
  let out = "";
  for (const byte of Buffer.from(text, "utf8")) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}
