import { Code, ConnectError } from "@connectrpc/connect";
import type { UniversalServerRequest } from "@connectrpc/connect/protocol";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeGrpcWebTextRequest, encodeGrpcWebTextResponse } from "../../src/server/grpc-web-text.js";

// The base64 text of a grpc-web-text request is untrusted: whatever it is and however it is cut
// into chunks, it decodes as a simple reference decoder does, or fails with INVALID_ARGUMENT.

const group = /^[A-Za-z0-9+/]{2}(?:[A-Za-z0-9+/]{2}|[A-Za-z0-9+/]=|==)$/;

/** The reference: whole groups of four, each valid on its own (padding may end any group). */
function referenceDecode(text: string): Buffer | undefined {
  if (text.length % 4 !== 0) return undefined;
  const groups: Buffer[] = [];
  for (let i = 0; i < text.length; i += 4) {
    const g = text.slice(i, i + 4);
    if (!group.test(g)) return undefined;
    groups.push(Buffer.from(g, "base64"));
  }
  return Buffer.concat(groups);
}

function request(chunks: string[]): UniversalServerRequest {
  return {
    httpVersion: "1.1",
    url: "http://localhost/smarter.prompt.v1.PassthroughService/Passthrough",
    method: "POST",
    header: new Headers({ "content-type": "application/grpc-web-text" }),
    body: (async function* () {
      for (const chunk of chunks) yield Buffer.from(chunk, "latin1");
    })(),
    signal: new AbortController().signal,
  };
}

async function decodeAll(chunks: string[]): Promise<Buffer | ConnectError> {
  const decoded = decodeGrpcWebTextRequest(request(chunks));
  const parts: Uint8Array[] = [];
  try {
    for await (const part of decoded.body as AsyncIterable<Uint8Array>) parts.push(part);
  } catch (e) {
    if (e instanceof ConnectError) return e;
    throw e;
  }
  return Buffer.concat(parts);
}

/** Cuts text at the given fractions of its length. */
function cut(text: string, at: number[]): string[] {
  const points = [...new Set(at.map((f) => Math.floor(f * text.length)))].sort((a, b) => a - b);
  const chunks: string[] = [];
  let start = 0;
  for (const point of points) {
    chunks.push(text.slice(start, point));
    start = point;
  }
  chunks.push(text.slice(start));
  return chunks;
}

const cuts = fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 6 });

describe("decodeGrpcWebTextRequest", () => {
  it("decodes bytes sent as several padded base64 chunks, however the text is cut", async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 200 }), cuts, cuts, async (bytes, pieces, chunking) => {
        const text = cut(Buffer.from(bytes).toString("latin1"), pieces)
          .map((piece) => Buffer.from(piece, "latin1").toString("base64"))
          .join("");
        expect(await decodeAll(cut(text, chunking))).toEqual(Buffer.from(bytes));
      }),
      { numRuns: 300 },
    );
  });

  const nearBase64 = fc.string({ unit: fc.constantFrom(..."AZaz09+/=-_ \n!\u00ff"), maxLength: 40 });

  it("decodes any text as the reference does, or fails with INVALID_ARGUMENT", async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(nearBase64, fc.base64String({ maxLength: 40 })), cuts, async (text, chunking) => {
        const expected = referenceDecode(text);
        const result = await decodeAll(cut(text, chunking));
        if (expected === undefined) {
          expect(result).toBeInstanceOf(ConnectError);
          expect((result as ConnectError).code).toBe(Code.InvalidArgument);
        } else {
          expect(result).toEqual(expected);
        }
      }),
      { numRuns: 500 },
    );
  });
});

describe("encodeGrpcWebTextResponse", () => {
  it("encodes each chunk on its own, whole base64 groups that decode to it", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.uint8Array({ minLength: 1, maxLength: 50 }), { maxLength: 6 }), async (chunks) => {
        const response = encodeGrpcWebTextResponse({
          status: 200,
          header: new Headers({ "content-type": "application/grpc-web+proto" }),
          body: (async function* () {
            yield* chunks;
          })(),
        });
        const encoded: string[] = [];
        for await (const chunk of response.body!) encoded.push(Buffer.from(chunk).toString("latin1"));
        expect(encoded.map((text) => referenceDecode(text))).toEqual(chunks.map((chunk) => Buffer.from(chunk)));
      }),
      { numRuns: 200 },
    );
  });
});
