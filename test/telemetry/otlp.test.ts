import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import { openTracing, tracesUrl } from "../../src/telemetry/open.js";
import { startFakeProvider } from "../support/fake-provider.js";
import { startTestGateway } from "../support/gateway.js";

describe("telemetry.otlpEndpoint", () => {
  it.each([
    ["http://127.0.0.1:4318", "http://127.0.0.1:4318/v1/traces"],
    ["http://collector:4318/", "http://collector:4318/v1/traces"],
    ["https://otel.example.com/otlp", "https://otel.example.com/otlp/v1/traces"],
    ["http://127.0.0.1:4318/v1/traces", "http://127.0.0.1:4318/v1/traces"],
  ])("%s exports to %s", (endpoint, url) => {
    expect(tracesUrl(endpoint)).toBe(url);
  });

  it("is validated: a URL, and no other key in telemetry", () => {
    expect(() => parseConfig({ telemetry: { otlpEndpoint: "collector:4318" } })).toThrow(/telemetry\.otlpEndpoint/);
    expect(() => parseConfig({ telemetry: { otlpHeaders: {} } })).toThrow(/telemetry/);
    expect(parseConfig({}).telemetry).toEqual({});
  });

  it("absent, tracing is off: no span is made", async () => {
    const tracing = await openTracing(parseConfig({}).telemetry);
    expect(tracing.calls).toBeUndefined();
    await tracing.close();
  });

  it("set, the spans of each call are exported over OTLP/HTTP, at the latest when the gateway stops, naming the service and the instance", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const { exports, journalKey } = await oneCallExported({ traceparent: `00-${traceId}-00f067aa0ba902b7-01` });
    const sent = exports.map((e) => e.body).join("\n");
    expect(exports.every((e) => e.path === "/v1/traces" && e.contentType.startsWith("application/json"))).toBe(true);
    expect(sent).toContain("POST /api/v1/prompts/passthrough/{provider_name}/");
    expect(sent).toContain("POST /v1/chat/completions");
    expect(sent).toContain(traceId);
    expect(sent).toContain(journalKey);
    const resources = resourcesOf(exports);
    expect(resources.length).toBeGreaterThan(0);
    for (const attributes of resources) expect(attributes).toMatchObject({ "service.name": "passthrough", "service.instance.id": "otlp-test-1" });
  });

  it("OTEL_SERVICE_NAME renames the service, as in any OpenTelemetry SDK", async () => {
    process.env.OTEL_SERVICE_NAME = "gateway-renamed";
    try {
      const resources = resourcesOf((await oneCallExported()).exports);
      expect(resources.length).toBeGreaterThan(0);
      for (const attributes of resources) expect(attributes).toMatchObject({ "service.name": "gateway-renamed", "service.instance.id": "otlp-test-1" });
    } finally {
      delete process.env.OTEL_SERVICE_NAME;
    }
  });
});

/** The part of an OTLP/HTTP JSON export these tests read. */
interface OtlpTraces {
  resourceSpans: Array<{ resource: { attributes: Array<{ key: string; value: { stringValue?: string } }> } }>;
}

function attributesOf(resource: OtlpTraces["resourceSpans"][number]["resource"]): Record<string, string | undefined> {
  return Object.fromEntries(resource.attributes.map(({ key, value }) => [key, value.stringValue]));
}

interface Export {
  path: string;
  contentType: string;
  body: string;
}

/** One REST call through a gateway (instance `otlp-test-1`) exporting to a collector of the test's own; the exports once the gateway has stopped. */
async function oneCallExported(headers: Record<string, string> = {}): Promise<{ exports: Export[]; journalKey: string }> {
  const exports: Export[] = [];
  const collector = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      exports.push({ path: req.url ?? "", contentType: String(req.headers["content-type"]), body: Buffer.concat(chunks).toString("utf8") });
      res.writeHead(200, { "content-type": "application/json" }).end("{}");
    });
  });
  await new Promise<void>((resolve) => collector.listen(0, "127.0.0.1", resolve));
  const provider = await startFakeProvider();
  const gateway = await startTestGateway({
    providers: [{ name: "local", baseUrl: provider.url, retries: 0 }],
    server: { instanceId: "otlp-test-1" },
    telemetry: { otlpEndpoint: `http://127.0.0.1:${(collector.address() as AddressInfo).port}` },
  });
  let closed = false;
  try {
    const response = await fetch(`${gateway.url}/api/v1/prompts/passthrough/local/`, { method: "POST", headers, body: "{}" });
    expect(response.status).toBe(200);
    closed = true;
    await gateway.close();
    return { exports, journalKey: String(response.headers.get("x-journal-key")) };
  } finally {
    if (!closed) await gateway.close();
    await provider.close();
    await new Promise((resolve) => collector.close(resolve));
  }
}

function resourcesOf(exports: readonly Export[]): Array<Record<string, string | undefined>> {
  return exports.flatMap((e) => (JSON.parse(e.body) as OtlpTraces).resourceSpans.map((spans) => attributesOf(spans.resource)));
}
