import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HealthCheckResponse_ServingStatus as ServingStatus } from "../../src/gen/grpc/health/v1/health_pb.js";
import { until } from "../journal/support.js";
import { startTcpProxy } from "../support/tcp-proxy.js";
import { closedPort, postgresUrl, probePostgres } from "../store/postgres-support.js";
import { startFakeProvider, type FakeProvider } from "../support/fake-provider.js";
import { startTestGateway } from "../support/gateway.js";
import { check, grpcClient, watch } from "../support/health-clients.js";
import { NO_CACHE } from "../support/no-cache.js";

// GET /readyz reports the store, the sinks and the journal; it and gRPC health turn when the store does.
const SERVICES = ["", "smarter.prompt.v1.PassthroughService", "smarter.prompt.v1.JournalService", "smarter.prompt.v1.AdminService"];

let provider: FakeProvider;
beforeAll(async () => {
  provider = await startFakeProvider();
});
afterAll(() => provider?.close());

async function readyz(url: string): Promise<{ status: number; body: unknown; headers: Record<string, string> }> {
  const response = await fetch(`${url}/readyz`);
  return { status: response.status, body: await response.json(), headers: Object.fromEntries(response.headers) };
}

describe("GET /readyz", () => {
  it("is 200 and says each sink's state: one that cannot be reached is retrying, and the gateway still ready", async () => {
    const webhook = `http://127.0.0.1:${await closedPort()}/hook`;
    const gateway = await startTestGateway({
      providers: [{ name: "local", baseUrl: provider.url, retries: 0 }],
      // Shutdown waits this long for the sink that never answers.
      signals: { sinks: [{ type: "webhook", url: webhook, secret: "s" }], flushTimeoutMs: 200 },
    });
    try {
      const first = await readyz(gateway.url);
      expect(first).toMatchObject({ status: 200, body: { status: "ready", store: { reachable: true }, sinks: [{ name: "webhook", state: "idle" }], journal: { queued: 0, spooled: 0 } } });
      expect(first.headers).toMatchObject({ ...NO_CACHE, "content-type": "application/json" });

      expect((await fetch(`${gateway.url}/api/v1/prompts/passthrough/local/`, { method: "POST", body: "{}" })).status).toBe(200);
      await until(async () => ((await readyz(gateway.url)).body as { sinks: { state: string }[] }).sinks[0].state === "retrying", "the webhook sink retries");
      expect(await readyz(gateway.url)).toMatchObject({ status: 200, body: { status: "ready", sinks: [{ name: "webhook", state: "retrying" }] } });
      const client = grpcClient(gateway.url);
      for (const service of SERVICES) expect(await check(client, service)).toEqual({ status: ServingStatus.SERVING });
      client.close();
    } finally {
      await gateway.close();
    }
  });
});

const unreachable = await probePostgres();
const schema = `passthrough_readiness_${randomBytes(4).toString("hex")}`;

// This machine kind runs PostgreSQL and .ci/run checks it: a missing server fails, never skips.
describe("GET /readyz and gRPC health with the store taken away (PostgreSQL behind a TCP proxy)", () => {
  afterAll(async () => {
    if (unreachable !== undefined) return;
    const client = new pg.Client(postgresUrl);
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await client.end();
  });

  it("are 503 unavailable and NOT_SERVING while the store does not answer, and ready again once it does", async () => {
    if (unreachable !== undefined) throw new Error(`PostgreSQL is unreachable at ${postgresUrl}: ${unreachable}`);
    const target = new URL(postgresUrl);
    const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
    const proxied = new URL(postgresUrl);
    proxied.port = String(proxy.port);
    const gateway = await startTestGateway({ database: { url: proxied.href, schema }, providers: [{ name: "local", baseUrl: provider.url, retries: 0 }] });
    const client = grpcClient(gateway.url);
    try {
      const watcher = watch(client, "smarter.prompt.v1.PassthroughService");
      await watcher.received(1);
      expect(await readyz(gateway.url)).toMatchObject({ status: 200, body: { status: "ready", store: { reachable: true }, sinks: [], journal: { queued: 0, spooled: 0 } } });

      await proxy.close();
      await until(async () => (await readyz(gateway.url)).status === 503, "readyz answers 503", 5000);
      expect((await readyz(gateway.url)).body).toEqual({ status: "unavailable", store: { reachable: false }, sinks: [], journal: { queued: 0, spooled: 0 } });
      for (const service of SERVICES) expect(await check(client, service)).toEqual({ status: ServingStatus.NOT_SERVING });
      await watcher.received(2);
      // A call still works: the journal keeps its entry until the store is back.
      expect((await fetch(`${gateway.url}/api/v1/prompts/passthrough/local/`, { method: "POST", body: "{}" })).status).toBe(200);

      await proxy.reopen();
      await until(async () => (await readyz(gateway.url)).status === 200, "readyz answers 200 again", 5000);
      for (const service of SERVICES) expect(await check(client, service)).toEqual({ status: ServingStatus.SERVING });
      await watcher.received(3);
      expect(watcher.statuses).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING, ServingStatus.SERVING]);
      watcher.call.cancel();
    } finally {
      client.close();
      await gateway.close();
      await proxy.close();
    }
  });
});
