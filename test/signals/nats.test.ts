import { randomBytes } from "node:crypto";
import { createServer, type Server, type Socket } from "node:net";
import { jetstream, jetstreamManager, type JetStreamManager, type JsMsg } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { SignalEvent, SignalSink } from "../../src/signals/sink.js";
import { createNatsSink } from "../../src/signals/sinks/nats.js";
import { startTcpProxy } from "../limits/support/tcp-proxy.js";
import { runSinkContract, sampleEvents, silentContext } from "./sink.contract.js";
import { NATS_TEST_URL, assertNats, inspector, probeNats } from "./support/nats.js";
import { closedPort, timed } from "./support/services.js";

const unreachable = await probeNats();
const never = () => new AbortController().signal;
const natsPort = Number(new URL(NATS_TEST_URL).port || 4222);

let connection: NatsConnection;
let manager: JetStreamManager;
const streams = new Set<string>();

beforeAll(async () => {
  assertNats(unreachable);
  connection = await inspector();
  manager = await jetstreamManager(connection);
});
afterAll(async () => {
  if (!connection) return; // NATS was unreachable: the suite has failed already
  for (const name of streams) await manager.streams.delete(name).catch(() => undefined);
  await connection.close();
});

/** A stream of the test's own, on a subject of its own; deleted after the run. */
async function newStream(): Promise<{ name: string; subject: string }> {
  const tag = randomBytes(6).toString("hex");
  const name = `PASSTHROUGH_TEST_${tag}`;
  const subject = `passthrough-test.${tag}.signals`;
  await manager.streams.add({ name, subjects: [subject] });
  streams.add(name);
  return { name, subject };
}

async function deleteStream(name: string): Promise<void> {
  await manager.streams.delete(name);
  streams.delete(name);
}

/** Every message of the stream, read with an ordered consumer. */
async function readStream(name: string): Promise<JsMsg[]> {
  const count = (await manager.streams.info(name)).state.messages;
  if (count === 0) return [];
  const consumer = await jetstream(connection).consumers.get(name);
  const messages: JsMsg[] = [];
  for await (const message of await consumer.fetch({ max_messages: count, expires: 2000 })) {
    messages.push(message);
    if (messages.length === count) break;
  }
  await consumer.delete().catch(() => undefined);
  return messages;
}

const eventsOf = async (name: string) => (await readStream(name)).map((message) => message.json<SignalEvent>());

runSinkContract({
  name: "nats",
  newSink: async () => {
    const { name, subject } = await newStream();
    return {
      sink: createNatsSink({ url: NATS_TEST_URL, subject }, silentContext),
      readBack: () => eventsOf(name),
      cleanup: () => deleteStream(name),
    };
  },
});

describe("the NATS sink", () => {
  const opened: SignalSink[] = [];
  const open = (url: string, subject: string, timeoutMs?: number) => {
    const sink = createNatsSink({ url, subject, timeoutMs }, silentContext);
    opened.push(sink);
    return sink;
  };
  afterEach(async () => {
    for (const sink of opened.splice(0)) await sink.close();
  });

  it("publishes each event with CloudEvents binary-mode headers, Nats-Msg-Id the event id, the event JSON as the payload", async () => {
    const { name, subject } = await newStream();
    const events = sampleEvents(3);
    await open(NATS_TEST_URL, subject).deliver(events, never());
    const messages = await readStream(name);
    expect(messages.map((message) => message.subject)).toEqual([subject, subject, subject]);
    messages.forEach((message, i) => {
      const event = events[i];
      const header = (key: string) => message.headers?.get(key);
      expect({
        specversion: header("ce-specversion"),
        id: header("ce-id"),
        type: header("ce-type"),
        source: header("ce-source"),
        time: header("ce-time"),
        contentType: header("content-type"),
        msgId: header("Nats-Msg-Id"),
      }).toEqual({
        specversion: "1.0",
        id: event.id,
        type: `sh.smarter.passthrough.${event.signal}`,
        source: event.source,
        time: event.time,
        contentType: "application/json",
        msgId: event.id,
      });
      expect(new TextDecoder().decode(message.data)).toBe(JSON.stringify(event));
    });
    await deleteStream(name);
  });

  it("lets JetStream drop an event published again with the same id", async () => {
    const { name, subject } = await newStream();
    const sink = open(NATS_TEST_URL, subject);
    const [first, second] = [sampleEvents(3), sampleEvents(2)];
    await sink.deliver(first, never());
    // A retried batch, then one that overlaps it.
    await sink.deliver(first, never());
    await sink.deliver([first[2], ...second], never());
    expect(await eventsOf(name)).toEqual([...first, ...second]);
    await deleteStream(name);
  });

  it("rejects promptly when no stream captures the subject, naming it", async () => {
    const subject = `passthrough-test.${randomBytes(6).toString("hex")}.nowhere`;
    const { ms, error } = await timed(open(NATS_TEST_URL, subject, 2000).deliver(sampleEvents(1), never()));
    expect((error as Error).message).toContain(`no stream captures ${subject}`);
    expect(ms).toBeLessThan(3000);
  });

  it("is built while nothing listens, rejects each delivery within a bounded time, and another sink on the real server works", async () => {
    const { name, subject } = await newStream();
    const down = open(`nats://127.0.0.1:${await closedPort()}`, subject, 1000);
    for (let i = 0; i < 2; i++) {
      const { ms, error } = await timed(down.deliver(sampleEvents(1), never()));
      expect((error as Error).message).toMatch(/could not connect/);
      expect(ms).toBeLessThan(3000);
    }
    const events = sampleEvents(2);
    await open(NATS_TEST_URL, subject).deliver(events, never());
    expect(await eventsOf(name)).toEqual(events);
    await deleteStream(name);
  });

  it("rejects within its timeout when the server accepts the connection but never speaks", async () => {
    const sockets = new Set<Socket>();
    const silent: Server = createServer((socket) => void sockets.add(socket.on("error", () => {})));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = silent.address() as { port: number };
      const { ms, error } = await timed(open(`nats://127.0.0.1:${port}`, "passthrough-test.silent", 500).deliver(sampleEvents(1), never()));
      expect(error).toBeInstanceOf(Error);
      expect(ms).toBeLessThan(3000);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it("stops waiting for a connection when the signal aborts", async () => {
    const sockets = new Set<Socket>();
    const silent: Server = createServer((socket) => void sockets.add(socket.on("error", () => {})));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = silent.address() as { port: number };
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 100);
      const { ms, error } = await timed(open(`nats://127.0.0.1:${port}`, "passthrough-test.silent", 10_000).deliver(sampleEvents(1), controller.signal));
      expect((error as Error).message).toMatch(/aborted/);
      expect(ms).toBeLessThan(1000);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it("closes at once while a connect is under way that the server never answers", async () => {
    const sockets = new Set<Socket>();
    const silent: Server = createServer((socket) => void sockets.add(socket.on("error", () => {})));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = silent.address() as { port: number };
      const sink = open(`nats://127.0.0.1:${port}`, "passthrough-test.silent", 10_000);
      const controller = new AbortController();
      const delivery = sink.deliver(sampleEvents(1), controller.signal);
      await new Promise((resolve) => setTimeout(resolve, 100));
      controller.abort(new Error("shutdown deadline passed"));
      await expect(delivery).rejects.toThrow(/aborted/);
      const { ms, error } = await timed(sink.close());
      expect(error).toBeUndefined();
      expect(ms).toBeLessThan(500);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it("rejects at once while its server is gone, and delivers again once it is back", async () => {
    const { name, subject } = await newStream();
    const proxy = await startTcpProxy({ host: "127.0.0.1", port: natsPort });
    try {
      const sink = open(`nats://127.0.0.1:${proxy.port}`, subject, 1000);
      const before = sampleEvents(2);
      await sink.deliver(before, never());
      await proxy.close();
      await new Promise((resolve) => setTimeout(resolve, 200));
      const { ms, error } = await timed(sink.deliver(sampleEvents(1), never()));
      expect(error).toBeInstanceOf(Error);
      expect(ms).toBeLessThan(1500);
      await proxy.reopen();
      const after = sampleEvents(2);
      const deadline = Date.now() + 10_000;
      for (;;) {
        const attempt = await timed(sink.deliver(after, never()));
        if (attempt.error === undefined) break;
        if (Date.now() > deadline) throw attempt.error;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      // The batch refused while the server was gone never reached the stream.
      expect(await eventsOf(name)).toEqual([...before, ...after]);
    } finally {
      await proxy.close();
      await deleteStream(name);
    }
  });

  it("checks its options when built", () => {
    expect(() => createNatsSink({ url: "http://127.0.0.1:4222", subject: "a" })).toThrow(/url/);
    expect(() => createNatsSink({ url: NATS_TEST_URL, subject: "a.*" })).toThrow(/subject/);
    expect(() => createNatsSink({ url: NATS_TEST_URL, subject: "a", timeoutMs: 0 })).toThrow(/timeoutMs/);
  });
});
