import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join, relative, sep } from "node:path";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { PLAYGROUND_ROOT } from "../../src/server/playground.js";
import { chunks, completion, contentOf, json, sse, startFakeProvider, type FakeProvider } from "../support/fake-provider.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";

// The playground in headless Chromium, against a real gateway in front of the test provider:
// the page served by the gateway streams an answer that grows on screen, shows its journal key
// and reads the entry back, and words a refusal; copies of the page on other origins show that
// CORS lets the listed one call the gateway and makes the browser block the other.
const CHROMIUM = "/usr/bin/chromium";
const ARTIFACTS = join(import.meta.dirname, "artifacts");
const STREAMED = chunks(14);

let provider: FakeProvider;
let gateway: TestGateway;
let browser: Browser;
let listed: Server;
let unlisted: Server;
let context: BrowserContext | undefined;

beforeAll(async () => {
  if (!existsSync(join(PLAYGROUND_ROOT, "index.html"))) throw new Error(`the playground is not built in ${PLAYGROUND_ROOT}: run npm run build`);
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)`);
  mkdirSync(ARTIFACTS, { recursive: true });
  provider = await startFakeProvider();
  provider.setDefault(json(200, completion("fake-model", "A whole answer, in one piece.")));
  listed = await serveCopy();
  unlisted = await serveCopy();
  gateway = await startTestGateway(
    { providers: [{ name: "local", baseUrl: provider.url, retries: 0 }], auth: { cors: { origins: [originOf(listed)] } } },
    {},
    undefined,
    { authenticate: true },
  );
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
});
afterAll(async () => {
  await browser?.close();
  await gateway?.close();
  await provider?.close();
  await Promise.all([listed, unlisted].map((server) => server && new Promise((resolve) => server.close(resolve))));
});
afterEach(async () => {
  await context?.close();
  context = undefined;
  provider.clear();
  provider.setDefault(json(200, completion("fake-model", "A whole answer, in one piece.")));
});

/** A copy of the built page on an origin of its own, with no CSP of the gateway's, as a team's own web server would host it. */
async function serveCopy(): Promise<Server> {
  const files = new Map<string, Buffer>();
  const walk = (folder: string): void => {
    for (const entry of readdirSync(folder, { withFileTypes: true })) {
      const path = join(folder, entry.name);
      if (entry.isDirectory()) walk(path);
      else files.set(`/${relative(PLAYGROUND_ROOT, path).split(sep).join("/")}`, readFileSync(path));
    }
  };
  walk(PLAYGROUND_ROOT);
  const types: Record<string, string> = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml" };
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const file = files.get(path === "/" ? "/index.html" : path);
    if (file === undefined) return void res.writeHead(404).end();
    res.writeHead(200, { "content-type": types[extname(path === "/" ? "/index.html" : path)] ?? "application/octet-stream" }).end(file);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}

function originOf(server: Server): string {
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** A fresh page (its own session storage), with the CSP violations it reports collected. */
async function openPage(url: string, colorScheme: "light" | "dark" = "light"): Promise<{ page: Page; violations: string[] }> {
  context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme });
  const page = await context.newPage();
  const violations: string[] = [];
  page.on("console", (message) => {
    if (/Content Security Policy/i.test(message.text())) violations.push(message.text());
  });
  await page.goto(url);
  return { page, violations };
}

/** Enters the key and waits for the provider picker to offer `local`. */
async function enterKey(page: Page, key: string): Promise<void> {
  await page.fill("#api-key", key);
  await page.waitForSelector('#provider option[value="local"]', { state: "attached" });
  await page.selectOption("#provider", "local");
}

const text = (page: Page, selector: string) => page.locator(selector).innerText();
/** The element's text once `test` holds for it, polled from here (the DOM's types are not this project's). */
async function textWhen(page: Page, selector: string, test: (text: string) => boolean, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = (await page.locator(selector).textContent()) ?? "";
    if (test(found)) return found;
    if (Date.now() > deadline) throw new Error(`${selector} never matched; it says: ${found}`);
    await new Promise((resolve) => setTimeout(resolve, 15));
  }
}
const state = (page: Page) => page.locator("#status").getAttribute("data-state");
const shot = (page: Page, name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });

describe("the playground served by the gateway", () => {
  it("is served at / with a strict CSP, nosniff and the never-cached headers", async () => {
    const response = await fetch(`${gateway.url}/`);
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(response.headers.get("content-security-policy")).toContain("connect-src 'self'");
    expect(response.headers.get("x-content-type-options")).toBe("nosniff");
    expect(response.headers.get("cache-control")).toBe("no-cache, no-store, must-revalidate, private, max-age=0");
  });

  it("streams an answer that grows on screen, shows its timings and journal key, and reads the entry back", async () => {
    provider.reply(sse(STREAMED, { intervalMs: 120 }));
    const { page, violations } = await openPage(`${gateway.url}/`);
    expect(await text(page, "#gateway-url")).toBe(gateway.url);
    await enterKey(page, gateway.firstKey!);
    expect(await page.locator("#body").inputValue()).toContain('"messages"');
    await page.click("#send");

    // Two samples while the stream runs: the text grew between them, and it was not done at the first.
    await textWhen(page, "#output", (output) => output.length > 0);
    const first = { text: await text(page, "#output"), state: await state(page), sent: provider.requests[0]?.sentAt.length ?? 0 };
    await page.waitForTimeout(450);
    const second = { text: await text(page, "#output"), state: await state(page) };
    await shot(page, "streaming");
    expect(first.state).toBe("streaming");
    expect(first.sent).toBeLessThan(STREAMED.length + 1);
    expect(second.text.length).toBeGreaterThan(first.text.length);
    expect(second.text.startsWith(first.text)).toBe(true);

    await page.waitForSelector('#status[data-state="ok"]', { timeout: 10_000 });
    expect(await text(page, "#output")).toBe(contentOf(STREAMED));
    expect(await text(page, "#chunk-count")).toBe(String(STREAMED.length));
    expect(await text(page, "#first-chunk")).toMatch(/^\d+ ms$|^\d+\.\d\d s$/);
    expect(await text(page, "#total")).toMatch(/^\d\.\d\d s$/);
    expect(await text(page, "#code")).toBe("gRPC 0");
    const journalKey = await text(page, "#journal-key");
    expect(journalKey).toMatch(/^[0-9a-f]{64}$/);
    await shot(page, "streamed");

    await page.click("#read-journal");
    await textWhen(page, "#journal-entry", (entry) => entry.includes(`"key": "${journalKey}"`));
    const entry = await text(page, "#journal-entry");
    expect(entry).toContain('"protocol": "grpc-web"');
    expect(entry).toContain('"providerName": "local"');
    await shot(page, "journal-entry");
    expect(violations).toEqual([]);
  });

  it("sends unary and shows the whole answer", async () => {
    const { page } = await openPage(`${gateway.url}/`, "dark");
    await enterKey(page, gateway.firstKey!);
    await page.click('label[for="mode-unary"]');
    await page.click("#send");
    await page.waitForSelector('#status[data-state="ok"]');
    expect(await text(page, "#output")).toBe("A whole answer, in one piece.");
    expect(await text(page, "#journal-key")).toMatch(/^[0-9a-f]{64}$/);
    await shot(page, "unary-dark");
  });

  it("shows a wrong key's UNAUTHENTICATED refusal as the gateway words it", async () => {
    const { page } = await openPage(`${gateway.url}/`);
    await page.fill("#api-key", `ptk_${"a".repeat(16)}_${"B".repeat(42)}A`);
    await textWhen(page, "#providers-state", (said) => said.includes("UNAUTHENTICATED"));
    await page.click("#send");
    await page.waitForSelector('#status[data-state="error"]');
    expect(await text(page, "#status")).toBe("UNAUTHENTICATED");
    expect(await text(page, "#error-code")).toBe("UNAUTHENTICATED (gRPC 16)");
    expect(await text(page, "#error-message")).toMatch(/^unknown credential: /);
    await shot(page, "unauthenticated");
    expect(provider.requests).toHaveLength(0);
  });
});

describe("the playground on another origin", () => {
  it("calls the gateway from an origin in auth.cors.origins", async () => {
    provider.reply(sse(chunks(3)));
    const { page } = await openPage(`${originOf(listed)}/?gateway=${encodeURIComponent(gateway.url)}`);
    expect(await text(page, "#gateway-url")).toBe(gateway.url);
    await enterKey(page, gateway.firstKey!);
    await page.click("#send");
    await page.waitForSelector('#status[data-state="ok"]');
    expect(await text(page, "#output")).toBe(contentOf(chunks(3)));
    expect(await text(page, "#journal-key")).toMatch(/^[0-9a-f]{64}$/);
  });

  it("is blocked by the browser from an origin not listed: a network error, and the provider is never called", async () => {
    const { page } = await openPage(`${originOf(unlisted)}/?gateway=${encodeURIComponent(gateway.url)}`);
    await page.fill("#api-key", gateway.firstKey!);
    await textWhen(page, "#providers-state", (said) => said.includes("NETWORK_ERROR"));
    await page.click("#send");
    await page.waitForSelector('#status[data-state="error"]');
    expect(await text(page, "#error-code")).toBe("Network error");
    expect(await text(page, "#error-message")).toContain("auth.cors.origins");
    await shot(page, "cors-blocked");
    expect(provider.requests).toHaveLength(0);
  });
});
