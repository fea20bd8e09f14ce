import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadPlayground, PLAYGROUND_CSP } from "../../src/server/playground.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";
import { NO_CACHE } from "../support/no-cache.js";

// The playground's files are served at their exact paths and nothing else: no path a request
// names reaches the file system, whatever it spells; server.playground: false leaves / a 404.
let server: Server;
let base: { host: string; port: number };
let gateway: TestGateway;
let off: TestGateway;

beforeAll(async () => {
  const folder = mkdtempSync(join(tmpdir(), "passthrough-playground-"));
  const root = join(folder, "web");
  mkdirSync(join(root, "playground"), { recursive: true });
  writeFileSync(join(root, "index.html"), "<!doctype html><title>p</title>");
  writeFileSync(join(root, "playground", "app.js"), "console.log(1);");
  writeFileSync(join(root, "playground", "app.css"), "body{}");
  writeFileSync(join(root, "playground", "favicon.svg"), "<svg/>");
  writeFileSync(join(root, "notes.txt"), "not a page file");
  writeFileSync(join(folder, "secret.txt"), "outside the root");
  const playground = loadPlayground(root)!;
  server = createServer((req, res) => {
    if (!playground.handle(req, res)) res.writeHead(404).end("fell through");
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = { host: "127.0.0.1", port: (server.address() as AddressInfo).port };
  gateway = await startTestGateway({});
  off = await startTestGateway({ server: { playground: false } });
});
afterAll(async () => {
  await new Promise((resolve) => server?.close(resolve));
  await gateway?.close();
  await off?.close();
});

/** A request with its path sent exactly as written (fetch would normalize `..`). */
function raw(path: string, method = "GET", to = base): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ ...to, path, method }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (piece: string) => (body += piece));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("the playground's files", () => {
  it.each([
    ["/", "text/html; charset=utf-8", "<!doctype html><title>p</title>"],
    ["/index.html", "text/html; charset=utf-8", "<!doctype html><title>p</title>"],
    ["/playground/app.js", "text/javascript; charset=utf-8", "console.log(1);"],
    ["/playground/app.js?v=2", "text/javascript; charset=utf-8", "console.log(1);"],
    ["/playground/app.css", "text/css; charset=utf-8", "body{}"],
    ["/playground/favicon.svg", "image/svg+xml", "<svg/>"],
  ])("serves %s as %s, with the CSP and nosniff", async (path, type, body) => {
    const response = await raw(path);
    expect(response).toMatchObject({ status: 200, body });
    expect(response.headers).toMatchObject({
      "content-type": type,
      "content-length": String(Buffer.byteLength(body)),
      "content-security-policy": PLAYGROUND_CSP,
      "x-content-type-options": "nosniff",
    });
  });

  it.each([
    "/notes.txt",
    "/../secret.txt",
    "/playground/../index.html",
    "/playground/..%2f..%2fsecret.txt",
    "/%2e%2e/secret.txt",
    "/playground/",
    "/playground",
    "//index.html",
    "/PLAYGROUND/app.js",
    "/playground/app.js/",
    "/index.html%00.js",
  ])("serves nothing for %s", async (path) => {
    expect(await raw(path)).toMatchObject({ status: 404, body: "fell through" });
  });

  it("answers HEAD with the headers alone, and leaves other methods to the gateway's routes", async () => {
    const head = await raw("/playground/app.js", "HEAD");
    expect(head).toMatchObject({ status: 200, body: "" });
    expect(head.headers["content-length"]).toBe("15");
    expect(await raw("/", "POST")).toMatchObject({ status: 404, body: "fell through" });
  });

  it("is not loaded when the page was not built", () => {
    expect(loadPlayground(join(tmpdir(), "passthrough-no-such-folder"))).toBeUndefined();
  });
});

describe("the gateway's playground", () => {
  const to = () => ({ host: "127.0.0.1", port: gateway.address.port });

  it("is on by default, its assets never cached", async () => {
    const response = await raw("/playground/app.js", "GET", to());
    expect(response.status).toBe(200);
    expect(response.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect(response.headers["content-security-policy"]).toBe(PLAYGROUND_CSP);
    for (const [name, value] of Object.entries(NO_CACHE)) expect(response.headers[name]).toBe(value);
  });

  it("leaves a path outside its files to the routes: a 404 in the REST envelope", async () => {
    const response = await raw("/playground/../../package.json", "GET", to());
    expect(response.status).toBe(404);
    expect(JSON.parse(response.body).error.code).toBe("not_found");
  });

  it("is off with server.playground: false: / is a 404, never cached", async () => {
    const response = await raw("/", "GET", { host: "127.0.0.1", port: off.address.port });
    expect(response.status).toBe(404);
    expect(response.headers["content-security-policy"]).toBeUndefined();
    expect(JSON.parse(response.body).error.description).toBe("no route for GET /");
    for (const [name, value] of Object.entries(NO_CACHE)) expect(response.headers[name]).toBe(value);
  });
});
