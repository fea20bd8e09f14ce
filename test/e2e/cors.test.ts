import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { completion, json, startFakeProvider, type FakeProvider } from "../support/fake-provider.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";
import { NO_CACHE } from "../support/no-cache.js";

// CORS for the origins in auth.cors.origins: preflights answered with what gRPC-Web and Connect
// clients send and read; an origin not listed gets no CORS headers, so a browser blocks it.
let provider: FakeProvider;
let gateway: TestGateway;
const ALLOWED = "http://app.example.test:5173";

beforeAll(async () => {
  provider = await startFakeProvider();
  provider.setDefault(json(200, completion("m")));
  gateway = await startTestGateway({ providers: [{ name: "local", baseUrl: provider.url }], auth: { cors: { origins: [ALLOWED] } } });
});
afterAll(async () => {
  await gateway?.close();
  await provider?.close();
});

const preflight = (origin: string, path = "/smarter.prompt.v1.PassthroughService/Passthrough") =>
  fetch(gateway.url + path, {
    method: "OPTIONS",
    headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type,x-grpc-web,authorization" },
  });

describe("CORS", () => {
  it("answers a preflight from a listed origin with the methods and the gRPC-Web and Connect headers", async () => {
    const response = await preflight(ALLOWED);
    expect(response.status).toBe(204);
    expect(response.headers.get("access-control-allow-origin")).toBe(ALLOWED);
    expect(response.headers.get("vary")).toBe("Origin");
    expect(response.headers.get("access-control-allow-methods")).toContain("POST");
    const allowed = response.headers.get("access-control-allow-headers")!.toLowerCase().split(", ");
    for (const name of ["content-type", "x-grpc-web", "grpc-timeout", "connect-protocol-version", "connect-timeout-ms", "authorization", "x-user-agent"]) {
      expect(allowed).toContain(name);
    }
    expect(Number(response.headers.get("access-control-max-age"))).toBeGreaterThan(0);
    for (const [name, value] of Object.entries(NO_CACHE)) expect(response.headers.get(name)).toBe(value);
    expect(provider.requests).toHaveLength(0);
  });

  it("gives a preflight from an origin not listed no CORS headers", async () => {
    const response = await preflight("http://evil.example.test");
    expect(response.status).toBe(204);
    expect(response.headers.get("access-control-allow-origin")).toBeNull();
    expect(response.headers.get("access-control-allow-headers")).toBeNull();
  });

  it.each([
    { name: "REST", path: "/api/v1/prompts/passthrough/local/", headers: { "content-type": "application/json" }, body: "{}" },
    { name: "Connect", path: "/smarter.prompt.v1.PassthroughService/Passthrough", headers: { "content-type": "application/json" }, body: '{"providerName":"local","body":{}}' },
  ])("exposes the journal key and the gRPC status headers on a $name answer to a listed origin", async ({ path, headers, body }) => {
    const response = await fetch(gateway.url + path, { method: "POST", headers: { ...headers, origin: ALLOWED }, body });
    expect(response.status).toBe(200);
    expect(response.headers.get("access-control-allow-origin")).toBe(ALLOWED);
    const exposed = response.headers.get("access-control-expose-headers")!.toLowerCase().split(", ");
    for (const name of ["x-journal-key", "grpc-status", "grpc-message", "grpc-status-details-bin", "retry-after", "www-authenticate"]) expect(exposed).toContain(name);
  });

  it("gives an answer to an origin not listed no CORS headers", async () => {
    const response = await fetch(`${gateway.url}/api/v1/prompts/passthrough/local/`, { method: "POST", headers: { origin: "http://evil.example.test" }, body: "{}" });
    expect(response.headers.get("access-control-allow-origin")).toBeNull();
    expect(response.headers.get("access-control-expose-headers")).toBeNull();
  });
});
