/**
 * A sink never delays or fails a call (SPEC section 6), shown with real faulty sinks: a webhook
 * answering after 10 s, NATS and Redis taken away behind TCP proxies. While each is down, the
 * same calls take as long as on a gateway with no sink, what the full queue cannot hold is
 * counted as dropped, and once it is back the queued events and the later ones arrive, in order.
 * Shutdown with a sink whose server does not answer (a webhook, NATS, Redis) keeps to
 * `signals.flushTimeoutMs` and counts what it drops.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import type { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { ConfigInput } from "../../src/config/schema.js";
import type { SignalEvent } from "../../src/signals/sink.js";
import { createProtocolClient } from "../support/clients.js";
import { startFakeProvider, type FakeProvider } from "../support/fake-provider.js";
import { startTestGateway, type TestGateway } from "../support/gateway.js";
import { REDIS_TEST_URL, assertRedis, inspector as redisInspector, redisReachable } from "../limits/support/redis.js";
import { startTcpProxy, type TcpProxy } from "../limits/support/tcp-proxy.js";
import { NATS_TEST_URL, assertNats, inspector as natsInspector, probeNats } from "../signals/support/nats.js";
import { CALLS, compareLatency, deduplicated, eventually, median, recorderSink, sinkFigures, startWebhookReceiver, type WebhookReceiver } from "./support/sink-faults.js";

const natsUnusable = await probeNats();
const redisUp = await redisReachable();

/** Small, so that one comparison's calls (4 events each) overflow it many times. */
const QUEUE_SIZE = 50;
const EVENTS_PER_CALL = 4;
/** Slower than any call here, faster than any sink's timeout: a call that waited for a sink cannot stay under it. */
const SLOWEST_CALL_MS = 2500;
/** How long a sink that is back may take to deliver again: its backoff was short, as its outage was. */
const RESUME_MS = 30_000;

let provider: FakeProvider;
let plain: TestGateway;
let nats: NatsConnection;
let streams: JetStreamManager;
let redis: Redis;
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  assertNats(natsUnusable);
  assertRedis(redisUp);
  provider = await startFakeProvider();
  plain = await startTestGateway(gatewayConfig([]));
  nats = await natsInspector();
  streams = await jetstreamManager(nats);
  redis = redisInspector();
  await redis.connect();
});
afterAll(async () => {
  await plain?.close();
  await provider?.close();
  await nats?.close();
  redis?.disconnect();
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  provider?.clear();
});

function gatewayConfig(sinks: NonNullable<ConfigInput["signals"]>["sinks"], signals: ConfigInput["signals"] = {}): ConfigInput {
  return { providers: [{ name: "local", baseUrl: provider.url, retries: 0 }], signals: { queueSize: QUEUE_SIZE, ...signals, sinks } };
}

/** One faulty sink behind its own gateway, with the means to take it away, bring it back and read what reached it. */
interface Fault {
  readonly gateway: TestGateway;
  /** Its label in the metrics. */
  readonly sink: string;
  /** Every event the gateway emitted, in order, as a second sink of the test's own saw them. */
  readonly emitted: SignalEvent[];
  down(): Promise<void>;
  up(): Promise<void>;
  /** What reached the other side, duplicates left out. */
  received(): Promise<SignalEvent[]>;
}

async function faultyGateway(sinks: NonNullable<ConfigInput["signals"]>["sinks"]): Promise<{ gateway: TestGateway; emitted: SignalEvent[] }> {
  const recorder = recorderSink();
  const gateway = await startTestGateway(gatewayConfig(sinks), {}, undefined, { signalSinks: [recorder.sink] });
  cleanups.push(() => gateway.close());
  return { gateway, emitted: recorder.events };
}

/** A proxy to the server at `url`; closed from the start unless `open`. */
async function proxyTo(url: string, defaultPort: number, open: boolean): Promise<TcpProxy> {
  const proxy = await startTcpProxy({ host: "127.0.0.1", port: Number(new URL(url).port || defaultPort) });
  cleanups.push(() => proxy.close());
  if (!open) await proxy.close();
  return proxy;
}

async function webhookFault(): Promise<Fault> {
  const receiver: WebhookReceiver = await startWebhookReceiver("answer");
  cleanups.push(() => receiver.close());
  // The receiver answers after 10 s; the sink gives up after 3, and retries.
  const { gateway, emitted } = await faultyGateway([{ type: "webhook", url: receiver.url, secret: "sink-faults-secret", timeoutMs: 3000 }]);
  return {
    gateway,
    sink: "webhook",
    emitted,
    down: async () => void (receiver.mode = "hang"),
    up: async () => receiver.recover(),
    received: async () => deduplicated(receiver.accepted),
  };
}

async function natsFault(upAtStart: boolean): Promise<Fault> {
  const tag = randomBytes(6).toString("hex");
  const name = `PASSTHROUGH_SINK_FAULTS_${tag}`;
  const subject = `passthrough-test.${tag}.signals`;
  await streams.streams.add({ name, subjects: [subject] });
  cleanups.push(() => streams.streams.delete(name).catch(() => undefined));
  const proxy = await proxyTo(NATS_TEST_URL, 4222, upAtStart);
  const { gateway, emitted } = await faultyGateway([{ type: "nats", url: `nats://127.0.0.1:${proxy.port}`, subject }]);
  return {
    gateway,
    sink: "nats",
    emitted,
    down: () => proxy.close(),
    up: () => proxy.reopen(),
    async received() {
      const count = (await streams.streams.info(name)).state.messages;
      const consumer = await jetstream(nats).consumers.get(name);
      const events: SignalEvent[] = [];
      for await (const message of await consumer.fetch({ max_messages: count, expires: 2000 })) {
        events.push(message.json<SignalEvent>());
        if (events.length === count) break;
      }
      await consumer.delete().catch(() => undefined);
      return deduplicated(events);
    },
  };
}

async function redisFault(upAtStart: boolean): Promise<Fault> {
  const stream = `passthrough-test:sink-faults:${randomUUID()}`;
  cleanups.push(() => redis.del(stream));
  const proxy = await proxyTo(REDIS_TEST_URL, 6379, upAtStart);
  const { gateway, emitted } = await faultyGateway([{ type: "redis", url: `redis://127.0.0.1:${proxy.port}`, stream }]);
  return {
    gateway,
    sink: "redis",
    emitted,
    down: () => proxy.close(),
    up: () => proxy.reopen(),
    async received() {
      const entries = await redis.xrange(stream, "-", "+");
      return deduplicated(entries.map(([, fields]) => JSON.parse(fields[fields.indexOf("event") + 1]) as SignalEvent));
    },
  };
}

/** Successful calls, one after another; resolves once the recorder has all their events. */
async function call(fault: Fault, count: number): Promise<void> {
  const expected = fault.emitted.length + count * EVENTS_PER_CALL;
  const client = createProtocolClient("rest", fault.gateway.url);
  for (let i = 0; i < count; i++) expect((await client.unary("local", { model: "m" })).ok).toBe(true);
  await eventually("the recorder's events", async () => fault.emitted.length, (length) => length === expected, 5000);
}

describe.each([
  { fault: "a webhook answering after 10 s", upAtStart: true, open: webhookFault },
  { fault: "NATS lost", upAtStart: true, open: () => natsFault(true) },
  { fault: "NATS unreachable from the start", upAtStart: false, open: () => natsFault(false) },
  { fault: "Redis lost", upAtStart: true, open: () => redisFault(true) },
  { fault: "Redis unreachable from the start", upAtStart: false, open: () => redisFault(false) },
])("signals with $fault", ({ upAtStart, open }) => {
  it("leave the calls' latency as with no sink, count the drops, and resume when the sink is back", { timeout: 60_000 }, async ({ annotate }) => {
    const fault = await open();
    const figures = () => sinkFigures(fault.gateway.url, fault.sink);

    // Delivered while the sink is up, when it is.
    const before = upAtStart ? EVENTS_PER_CALL : 0;
    if (upAtStart) {
      await call(fault, 1);
      await eventually("the first call's events delivered", figures, (now) => now.delivered === before, 10_000);
    }

    await fault.down();
    const latency = await compareLatency(plain.url, fault.gateway.url, "local");
    const [plainMedian, faultyMedian] = [median(latency.plain), median(latency.faulty)];
    await annotate(`median latency of ${CALLS.length} calls: no sink ${plainMedian.toFixed(2)} ms, ${fault.sink} down ${faultyMedian.toFixed(2)} ms (slowest ${Math.max(...latency.plain).toFixed(1)} and ${Math.max(...latency.faulty).toFixed(1)} ms)`);
    expect(latency.failed).toEqual([]);
    expect(faultyMedian).toBeLessThanOrEqual(Math.max(2 * plainMedian, plainMedian + 5));
    expect(Math.max(...latency.faulty)).toBeLessThan(SLOWEST_CALL_MS);

    // The queue holds the first QUEUE_SIZE events of the outage; every later one was dropped, and counted.
    const outage = CALLS.length * EVENTS_PER_CALL;
    await eventually("the recorder's events", async () => fault.emitted.length, (length) => length === before + outage, 5000);
    const down = await eventually("a failed delivery retried", figures, (now) => now.retries > 0, 10_000);
    expect(down).toMatchObject({ queued: QUEUE_SIZE, delivered: before, dropped: outage - QUEUE_SIZE });
    // The other sink of the same gateway was not held back.
    expect(await sinkFigures(fault.gateway.url, "recorder")).toEqual({ queued: 0, delivered: before + outage, retries: 0, dropped: 0 });

    // Back: the queued events go out, then the later ones, in the order they were emitted.
    await fault.up();
    const back = performance.now();
    await eventually("the queue delivered", figures, (now) => now.queued === 0 && now.delivered === before + QUEUE_SIZE, RESUME_MS);
    await annotate(`delivering again ${(performance.now() - back).toFixed(0)} ms after the sink was back, ${down.retries} retries meanwhile`);
    const resumed = fault.emitted.length;
    await call(fault, 3);
    const after = await eventually("the later calls' events delivered", figures, (now) => now.delivered === before + QUEUE_SIZE + 3 * EVENTS_PER_CALL, 10_000);
    expect(after.dropped).toBe(down.dropped);
    const expected = [...fault.emitted.slice(0, before + QUEUE_SIZE), ...fault.emitted.slice(resumed)];
    expect((await fault.received()).map((event) => event.id)).toEqual(expected.map((event) => event.id));
  });
});

/** A sink whose server stops answering: configured, and taken away once `stall` runs. */
interface Hang {
  readonly sinks: NonNullable<ConfigInput["signals"]>["sinks"];
  readonly sink: string;
  /** Whether the sink delivers a first call before `stall`. */
  readonly upAtStart: boolean;
  stall(): void;
  /** Deliveries waiting on the server, where the test sees them. */
  pending?(): number;
}

async function hangingWebhook(): Promise<Hang> {
  const receiver = await startWebhookReceiver("hang");
  cleanups.push(() => receiver.close());
  return { sinks: [{ type: "webhook", url: receiver.url, secret: "sink-faults-secret" }], sink: "webhook", upAtStart: false, stall() {}, pending: () => receiver.pending };
}

async function silentNats(upAtStart: boolean): Promise<Hang> {
  const tag = randomBytes(6).toString("hex");
  const name = `PASSTHROUGH_SINK_FAULTS_${tag}`;
  const subject = `passthrough-test.${tag}.signals`;
  await streams.streams.add({ name, subjects: [subject] });
  cleanups.push(() => streams.streams.delete(name).catch(() => undefined));
  const proxy = await proxyTo(NATS_TEST_URL, 4222, true);
  if (!upAtStart) proxy.stall();
  return { sinks: [{ type: "nats", url: `nats://127.0.0.1:${proxy.port}`, subject }], sink: "nats", upAtStart, stall: () => proxy.stall() };
}

async function silentRedis(upAtStart: boolean): Promise<Hang> {
  const stream = `passthrough-test:sink-faults:${randomUUID()}`;
  cleanups.push(() => redis.del(stream));
  const proxy = await proxyTo(REDIS_TEST_URL, 6379, true);
  if (!upAtStart) proxy.stall();
  return { sinks: [{ type: "redis", url: `redis://127.0.0.1:${proxy.port}`, stream }], sink: "redis", upAtStart, stall: () => proxy.stall() };
}

describe.each([
  { hang: "a webhook that hangs", open: hangingWebhook },
  { hang: "NATS that never answers the connect", open: () => silentNats(false) },
  { hang: "NATS that stopped answering", open: () => silentNats(true) },
  { hang: "Redis that never answers the connect", open: () => silentRedis(false) },
  { hang: "Redis that stopped answering", open: () => silentRedis(true) },
])("shutdown with $hang", ({ open }) => {
  it("returns within signals.flushTimeoutMs and counts what it could not deliver as dropped", async () => {
    const hang = await open();
    const flushTimeoutMs = 500;
    const gateway = await startTestGateway(gatewayConfig(hang.sinks, { flushTimeoutMs }));
    let closed = false;
    cleanups.push(() => (closed ? Promise.resolve() : gateway.close()));
    const figures = () => sinkFigures(gateway.url, hang.sink);
    const client = createProtocolClient("rest", gateway.url);
    const calls = async (count: number) => {
      for (let i = 0; i < count; i++) expect((await client.unary("local", { model: "m" })).ok).toBe(true);
    };
    if (hang.upAtStart) {
      await calls(1);
      await eventually("the first call's events delivered", figures, (now) => now.delivered === EVENTS_PER_CALL, 10_000);
    }
    hang.stall();
    await calls(3);
    const held = 3 * EVENTS_PER_CALL;
    await eventually("the events queued", figures, (now) => now.queued === held, 5000);
    // Long enough for a delivery to be waiting on the server.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const pending = hang.pending;
    if (pending) expect(pending()).toBeGreaterThan(0);

    const started = performance.now();
    await gateway.close();
    closed = true;
    const ms = performance.now() - started;
    expect(ms).toBeGreaterThanOrEqual(flushTimeoutMs - 50);
    expect(ms).toBeLessThan(flushTimeoutMs + 1500);
    const lines = gateway.logs.map((line) => JSON.parse(line) as { msg?: string; sink?: string; dropped?: number });
    expect(lines.find((line) => line.msg === "signals not delivered before the shutdown deadline")).toMatchObject({ sink: hang.sink, dropped: held });
    // The delivery under way was abandoned, not left open.
    if (pending) await eventually("the waiting delivery abandoned", async () => pending(), (count) => count === 0, 2000);
  });
});
