import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { kHttpExchange } from "../../src/transcoding/http-exchange.js";
import { createTranscoder, type Transcoder, type TranscoderOptions } from "../../src/transcoding/transcoder.js";
import { LibraryService } from "../gen/transcodingtest/v1/library_pb.js";

export type LibraryImpl = Partial<ServiceImpl<typeof LibraryService>>;

/** A call as the implementation received it. */
export interface ReceivedCall {
  method: string;
  request: unknown;
  context: HandlerContext;
}

/** A LibraryService that echoes what it received, recording each call. */
export function echoLibrary(received: ReceivedCall[]): LibraryImpl {
  const record = (method: string, request: unknown, context: HandlerContext) =>
    received.push({ method, request, context });
  return {
    getBook(req, ctx) {
      record("GetBook", req, ctx);
      return { shelf: req.shelf, bookId: req.bookId, title: req.view, tags: req.tags };
    },
    createBook(req, ctx) {
      record("CreateBook", req, ctx);
      return req.book ? { ...req.book, shelf: req.shelf } : { shelf: req.shelf };
    },
    readFile(req, ctx) {
      record("ReadFile", req, ctx);
      const exchange = ctx.values.get(kHttpExchange);
      if (req.path === "files/raw") exchange?.respondRaw("raw bytes", "text/plain; charset=utf-8");
      if (req.path === "files/missing") throw new ConnectError("no such file", Code.NotFound);
      if (req.path === "files/bug") throw new Error("secret-detail in /srv/app/file.ts");
      return { path: req.path };
    },
    updateNote(req, ctx) {
      record("UpdateNote", req, ctx);
      return { note: req.note, etag: "etag-1" };
    },
    deleteShelf(req, ctx) {
      record("DeleteShelf", req, ctx);
      return { shelf: req.shelf, deleted: true };
    },
    annotateShelf(req, ctx) {
      record("AnnotateShelf", req, ctx);
      return { payload: req.payload, shelf: req.shelf };
    },
  };
}

export interface LibraryServer {
  readonly baseUrl: string;
  readonly transcoder: Transcoder;
  readonly received: ReceivedCall[];
  /** Whether handle() returned true, per request in order. */
  readonly handled: boolean[];
  close(): Promise<void>;
}

/** Starts a node:http server on 127.0.0.1 that serves the LibraryService through the transcoder. */
export async function startLibraryServer(
  options: { impl?: LibraryImpl } & Omit<Partial<TranscoderOptions>, "services"> = {},
): Promise<LibraryServer> {
  const received: ReceivedCall[] = [];
  const handled: boolean[] = [];
  const { impl, ...rest } = options;
  const transcoder = createTranscoder({
    ...rest,
    services: [{ service: LibraryService, impl: { ...echoLibrary(received), ...impl } }],
  });
  const server: Server = createServer((req, res) => {
    const served = transcoder.handle(req, res);
    handled.push(served);
    if (!served) {
      res.statusCode = 404;
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    transcoder,
    received,
    handled,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
