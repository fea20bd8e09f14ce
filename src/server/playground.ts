import { existsSync, readdirSync, readFileSync } from "node:fs";
import { extname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import type { NodeRequest } from "../node-http/request.js";
import type { NodeResponse } from "../node-http/response.js";

/** Where `npm run build` puts the playground (scripts/build-web.mjs), from src/server/ and dist/server/ alike. */
export const PLAYGROUND_ROOT = fileURLToPath(new URL("../../dist/web/", import.meta.url));

/**
 * The page may load only its own files and call only the gateway that served it: no inline
 * script or style, no other origin, no framing.
 */
export const PLAYGROUND_CSP = "default-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
};

interface StaticFile {
  readonly body: Buffer;
  readonly type: string;
}

export interface Playground {
  /** Answers GET and HEAD of the page's files (true); anything else is left to the gateway's routes (false). */
  handle(req: NodeRequest, res: NodeResponse): boolean;
}

/**
 * The browser playground: the built files read into memory once, each served at its exact path
 * (`/` is `index.html`), so only known files are ever served and no request path reaches the
 * file system. Undefined when the page was not built, or could not be read (a build under way):
 * the page is an extra, and never keeps the gateway from serving calls.
 */
export function loadPlayground(root: string = PLAYGROUND_ROOT): Playground | undefined {
  const files = readFiles(root);
  const index = files?.get("/index.html");
  if (files === undefined || index === undefined) return undefined;
  files.set("/", index);
  return {
    handle(req, res) {
      if (req.method !== "GET" && req.method !== "HEAD") return false;
      const file = files.get((req.url ?? "/").split("?")[0]);
      if (file === undefined) return false;
      res.writeHead(200, {
        "content-type": file.type,
        "content-length": String(file.body.byteLength),
        "content-security-policy": PLAYGROUND_CSP,
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
      });
      if (req.method === "HEAD") res.end();
      else res.end(file.body);
      return true;
    },
  };
}

function readFiles(root: string): Map<string, StaticFile> | undefined {
  if (!existsSync(join(root, "index.html"))) return undefined;
  const files = new Map<string, StaticFile>();
  try {
    for (const path of listFiles(root)) {
      const type = CONTENT_TYPES[extname(path)];
      if (type !== undefined) files.set(`/${relative(root, path).split(sep).join("/")}`, { body: readFileSync(path), type });
    }
  } catch {
    return undefined;
  }
  return files;
}

function listFiles(folder: string): string[] {
  return readdirSync(folder, { withFileTypes: true }).flatMap((entry) => {
    const path = join(folder, entry.name);
    return entry.isDirectory() ? listFiles(path) : entry.isFile() ? [path] : [];
  });
}
