import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { newApiKey } from "../../src/auth/api-keys.js";
import type { SignalEvent } from "../../src/signals/sink.js";
import { openStore } from "../../src/store/open.js";
import type { NewApiKey, Store } from "../../src/store/store.js";
import { until } from "../journal/support.js";
import { callStream, createProtocolClient } from "../support/clients.js";
import { completion, delay, json, reset, startFakeProvider, type FakeProvider } from "../support/fake-provider.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";
import { memorySink } from "../support/memory-sink.js";

// The operations metrics, series by series, after a known set of calls: refusals by reason and
// by limit, the provider's own latency apart from the call's, the journal's and the sinks'.
let provider: FakeProvider;
let gateway: TestGateway;
let store: Store;
const delivered: SignalEvent[] = [];
const sink = memorySink(delivered);

async function addKey(fields: Partial<NewApiKey> = {}): Promise<Record<string, string>> {
  const material = newApiKey();
  await store.createKey({ id: material.id, digest: material.digest, name: "metrics", ...fields });
  return { authorization: `Bearer ${material.key.reveal()}` };
}

beforeAll(async () => {
  provider = await startFakeProvider();
  const url = `sqlite:${join(mkdtempSync(join(tmpdir(), "passthrough-metrics-")), "passthrough.db")}`;
  store = await openStore(url);
  const local = { baseUrl: provider.url, retries: 0 };
  gateway = await startTestGateway(
    { database: { url }, providers: [{ name: "local", ...local }, { name: "slow", ...local }, { name: "other", ...local }] },
    {},
    undefined,
    { authenticate: true, signalSinks: [sink] },
  );
});
afterAll(async () => {
  await gateway?.close();
  await store?.close();
  await provider?.close();
});

/** Every sample of the metric family `name` (its `_count`, `_sum` … included), by its labels. */
function samples(text: string, name: string): Record<string, number> {
  const found: Record<string, number> = {};
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || !line.startsWith(name)) continue;
    const match = /^(\S+?)(\{.*\})? (\S+)$/.exec(line);
    if (match && match[1] === name) found[match[2] ?? ""] = Number(match[3]);
  }
  return found;
}

describe("GET /metrics after known calls", () => {
  it("counts refusals by reason and limit, the provider's latency by status, the journal's and the sinks' work", async () => {
    const valid = await addKey();
    const onlyOther = await addKey({ allowedProviders: ["other"] });
    const expired = await addKey({ expiresAt: new Date(Date.now() - 1000) });
    const revokedHeaders = await addKey();
    const revokedId = /ptk_([a-z2-7]{16})_/.exec(revokedHeaders.authorization)![1];
    await store.revokeKey(revokedId);
    const onePerMinute = await addKey({ requestsPerMinute: 1 });
    const tenTokens = await addKey({ tokensPerMinute: 10 });
    const rest = (headers: Record<string, string>, name = "local") => createProtocolClient("rest", gateway.url, headers).unary(name, { model: "m" });

    // Refused by authentication: each reason once, over REST and gRPC alike.
    expect((await rest({})).status).toBe(401);
    expect((await rest({ authorization: "Basic dXNlcjpwYXNz" })).status).toBe(401);
    expect((await rest({ authorization: `Bearer ptk_${"a".repeat(16)}_${"B".repeat(42)}A` })).status).toBe(401);
    const grpc = createProtocolClient("grpc", gateway.url, expired);
    expect((await grpc.unary("local", { model: "m" })).code).toBe("unauthenticated");
    grpc.close();
    expect((await rest(revokedHeaders)).status).toBe(401);
    expect((await rest(onlyOther)).status).toBe(403);
    // Refused by a rate limit: requests, then tokens (the first call spends 21 of 10).
    provider.setDefault(json(200, completion("m")));
    expect((await rest(onePerMinute)).status).toBe(200);
    expect((await rest(onePerMinute)).status).toBe(429);
    expect((await rest(tenTokens)).status).toBe(200);
    expect((await rest(tenTokens)).status).toBe(429);
    // Answered by the provider: 200 unary and streamed, 503, a reset, and a slow 200.
    expect((await rest(valid)).status).toBe(200);
    expect((await callStream("connect", gateway.url, "local", { model: "m" }, { headers: valid })).code).toBeUndefined();
    provider.reply(json(503, { error: { message: "busy" } }));
    expect((await rest(valid)).status).toBe(502);
    provider.reply(reset());
    expect((await rest(valid)).status).toBe(502);
    provider.reply(delay(300, json(200, completion("m"))));
    expect((await rest(valid, "slow")).status).toBe(200);

    // 8 calls were admitted (the 403 among them: it failed after authentication); 7 reached the provider.
    await until(async () => samples(await (await fetch(`${gateway.url}/metrics`)).text(), "passthrough_journal_written_total")[""] === 8, "the journal has written every admitted call");
    await until(() => delivered.filter((event) => event.signal === "chat_finished").length === 8, "the sink has every call's signals");
    const text = await (await fetch(`${gateway.url}/metrics`)).text();

    expect(samples(text, "passthrough_auth_refusals_total")).toEqual({
      '{reason="missing"}': 1,
      '{reason="malformed"}': 1,
      '{reason="unknown"}': 1,
      '{reason="expired"}': 1,
      '{reason="revoked"}': 1,
      '{reason="permission_denied"}': 1,
    });
    expect(samples(text, "passthrough_rate_limit_refusals_total")).toEqual({ '{limit="requests"}': 1, '{limit="tokens"}': 1 });

    expect(samples(text, "passthrough_upstream_duration_seconds_count")).toEqual({
      '{provider="local",status="200"}': 4,
      '{provider="local",status="503"}': 1,
      '{provider="local",status="error"}': 1,
      '{provider="slow",status="200"}': 1,
    });
    const upstreamSlow = samples(text, "passthrough_upstream_duration_seconds_sum")['{provider="slow",status="200"}'];
    const callSlow = samples(text, "passthrough_call_duration_seconds_sum")['{protocol="rest",provider="slow"}'];
    expect(upstreamSlow).toBeGreaterThanOrEqual(0.29);
    expect(upstreamSlow).toBeLessThanOrEqual(callSlow);
    expect(samples(text, "passthrough_upstream_duration_seconds_bucket")['{le="0.25",provider="slow",status="200"}']).toBe(0);
    expect(samples(text, "passthrough_upstream_duration_seconds_bucket")['{le="0.5",provider="slow",status="200"}']).toBe(1);

    expect(samples(text, "passthrough_journal_written_total")).toEqual({ "": 8 });
    expect(samples(text, "passthrough_journal_queue_depth")).toEqual({ "": 0 });
    expect(samples(text, "passthrough_journal_spooled_entries")).toEqual({ "": 0 });
    expect(samples(text, "passthrough_journal_dropped_total")).toEqual({ "": 0 });
    expect(samples(text, "passthrough_journal_batch_write_seconds_count")[""]).toBeGreaterThanOrEqual(1);

    expect(samples(text, "passthrough_signals_delivered_total")).toEqual({ '{sink="memory"}': delivered.length });
    expect(samples(text, "passthrough_signal_queue_depth")).toEqual({ '{sink="memory"}': 0 });
    expect(samples(text, "passthrough_signal_retries_total")).toEqual({ '{sink="memory"}': 0 });
    expect(samples(text, "passthrough_signals_dropped_total")).toEqual({ '{sink="memory"}': 0 });
    // Five successes of four signals, the 403's three (the provider was never called), the two 502s' four.
    expect(delivered).toHaveLength(5 * 4 + 3 + 2 * 4);
  });
});
