import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { SignalEvent, SignalSink } from "../../src/signals/sink.js";
import { createRedisSink } from "../../src/signals/sinks/redis.js";
import { REDIS_TEST_URL, assertRedis, inspector, redisReachable } from "../limits/support/redis.js";
import { startTcpProxy } from "../limits/support/tcp-proxy.js";
import { runSinkContract, sampleEvents, silentContext } from "./sink.contract.js";
import { closedPort, timed } from "./support/services.js";

const reachable = await redisReachable();
const never = () => new AbortController().signal;
const redisPort = Number(new URL(REDIS_TEST_URL).port || 6379);
const run = randomUUID();
let streams = 0;
/** A stream key of the run's own; every key of the run is deleted after it. */
const newStream = () => `passthrough-test:signals:${run}:${streams++}`;

let client: Redis;
beforeAll(async () => {
  assertRedis(reachable);
  client = inspector();
  await client.connect();
});
afterAll(async () => {
  if (!client) return; // Redis was unreachable: the suite has failed already
  const keys = Array.from({ length: streams }, (_, i) => `passthrough-test:signals:${run}:${i}`);
  if (keys.length > 0) await client.del(...keys);
  client.disconnect();
});

async function entries(stream: string): Promise<Array<[string, string[]]>> {
  return client.xrange(stream, "-", "+");
}
const eventsOf = async (stream: string) => (await entries(stream)).map(([, fields]) => JSON.parse(fields[fields.indexOf("event") + 1]) as SignalEvent);

runSinkContract({
  name: "redis",
  newSink: async () => {
    const stream = newStream();
    return { sink: createRedisSink({ url: REDIS_TEST_URL, stream, maxLen: 10_000 }, silentContext), readBack: () => eventsOf(stream) };
  },
});

describe("the Redis sink", () => {
  const opened: SignalSink[] = [];
  const open = (options: { url?: string; stream: string; maxLen?: number; timeoutMs?: number }) => {
    const sink = createRedisSink({ url: REDIS_TEST_URL, ...options }, silentContext);
    opened.push(sink);
    return sink;
  };
  afterEach(async () => {
    for (const sink of opened.splice(0)) await sink.close();
  });

  it("adds one entry per event: the fields signal, id and event (the whole event as JSON)", async () => {
    const stream = newStream();
    const events = sampleEvents(2);
    await open({ stream }).deliver(events, never());
    expect((await entries(stream)).map(([, fields]) => fields)).toEqual(events.map((event) => ["signal", event.signal, "id", event.id, "event", JSON.stringify(event)]));
  });

  it("trims the stream to about maxLen, keeping the latest entries", async () => {
    const stream = newStream();
    const maxLen = 10;
    const sink = open({ stream, maxLen });
    const events = sampleEvents(1000);
    for (let start = 0; start < events.length; start += 100) await sink.deliver(events.slice(start, start + 100), never());
    // Approximate trimming removes whole nodes of the stream only: it keeps at least maxLen, and at most a node more.
    const [, nodeEntries] = (await client.config("GET", "stream-node-max-entries")) as [string, string];
    const length = await client.xlen(stream);
    expect(length).toBeGreaterThanOrEqual(maxLen);
    expect(length).toBeLessThanOrEqual(maxLen + Number(nodeEntries));
    expect(length).toBeLessThan(events.length);
    expect(await eventsOf(stream)).toEqual(events.slice(-length));
  });

  it("rejects with Redis's reason when it refuses the batch", async () => {
    const stream = newStream();
    await client.set(stream, "not a stream");
    await expect(open({ stream }).deliver(sampleEvents(1), never())).rejects.toThrow(/Redis did not take the batch: WRONGTYPE/);
  });

  it("is built while nothing listens, and rejects each delivery promptly", async () => {
    const sink = open({ url: `redis://127.0.0.1:${await closedPort()}`, stream: newStream(), timeoutMs: 5000 });
    for (let i = 0; i < 3; i++) {
      const { ms, error } = await timed(sink.deliver(sampleEvents(1), never()));
      expect((error as Error).message).toMatch(/could not connect.*ECONNREFUSED/);
      expect(ms).toBeLessThan(1000);
    }
  });

  it("rejects promptly while Redis is gone, and delivers again once it is back", async () => {
    const stream = newStream();
    const proxy = await startTcpProxy({ host: "127.0.0.1", port: redisPort });
    try {
      const sink = open({ url: `redis://127.0.0.1:${proxy.port}`, stream, timeoutMs: 1000 });
      const before = sampleEvents(2);
      await sink.deliver(before, never());
      await proxy.close();
      for (let i = 0; i < 2; i++) {
        const { ms, error } = await timed(sink.deliver(sampleEvents(1), never()));
        expect(error).toBeInstanceOf(Error);
        expect(ms).toBeLessThan(1500);
      }
      await proxy.reopen();
      const after = sampleEvents(2);
      await sink.deliver(after, never());
      expect(await eventsOf(stream)).toEqual([...before, ...after]);
    } finally {
      await proxy.close();
    }
  });

  it("rejects within its timeout when Redis stops answering, and stops waiting when the signal aborts", async () => {
    const proxy = await startTcpProxy({ host: "127.0.0.1", port: redisPort });
    try {
      const sink = open({ url: `redis://127.0.0.1:${proxy.port}`, stream: newStream(), timeoutMs: 300 });
      await sink.deliver(sampleEvents(1), never());
      proxy.stall();
      const timedOut = await timed(sink.deliver(sampleEvents(1), never()));
      expect(timedOut.error).toBeInstanceOf(Error);
      expect(timedOut.ms).toBeLessThan(1500);

      const patient = open({ url: `redis://127.0.0.1:${proxy.port}`, stream: newStream(), timeoutMs: 10_000 });
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 100);
      const aborted = await timed(patient.deliver(sampleEvents(1), controller.signal));
      expect((aborted.error as Error).message).toMatch(/aborted/);
      expect(aborted.ms).toBeLessThan(1000);
    } finally {
      proxy.resume();
      await proxy.close();
    }
  });

  it("closes at once while Redis does not answer, abandoning a batch or a connect under way", async () => {
    const proxy = await startTcpProxy({ host: "127.0.0.1", port: redisPort });
    try {
      const abandoned = async (sink: SignalSink) => {
        const controller = new AbortController();
        const delivery = sink.deliver(sampleEvents(1), controller.signal);
        await new Promise((resolve) => setTimeout(resolve, 100));
        controller.abort(new Error("shutdown deadline passed"));
        await expect(delivery).rejects.toThrow(/aborted/);
        return timed(sink.close());
      };
      // Connected, then Redis stops answering: QUIT would wait for an answer that never comes.
      const connected = open({ url: `redis://127.0.0.1:${proxy.port}`, stream: newStream(), timeoutMs: 10_000 });
      await connected.deliver(sampleEvents(1), never());
      proxy.stall();
      expect((await abandoned(connected)).ms).toBeLessThan(500);
      // Redis accepts the connection but never answers it.
      const connecting = open({ url: `redis://127.0.0.1:${proxy.port}`, stream: newStream(), timeoutMs: 10_000 });
      expect((await abandoned(connecting)).ms).toBeLessThan(500);
    } finally {
      proxy.resume();
      await proxy.close();
    }
  });

  it("checks its options when built", () => {
    expect(() => createRedisSink({ url: "http://127.0.0.1:6379", stream: "s" })).toThrow(/url/);
    expect(() => createRedisSink({ url: REDIS_TEST_URL, stream: "" })).toThrow(/stream/);
    expect(() => createRedisSink({ url: REDIS_TEST_URL, stream: "s", maxLen: 0 })).toThrow(/maxLen/);
  });
});
