import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { WriteAheadLog } from "../../src/durable/write-ahead-log.js";
import { createLogger } from "../../src/logging/logger.js";
import { createSignalDispatcher } from "../../src/signals/dispatcher.js";
import { segmentBytes, segmentFiles } from "../durable/support.js";
import type { SignalEvent, SignalSink } from "../../src/signals/sink.js";

const logger = createLogger({ level: "silent" });
/** Appends to local files are written at the end of the turn they were made in. */
const endOfTurn = () => new Promise(setImmediate);

function event(n: number): SignalEvent {
  return {
    signal: "chat_started",
    id: `event-${n}`,
    request_id: "request",
    journal_key: "0".repeat(64),
    time: new Date(0).toISOString(),
    provider: "openai",
    protocol: "rest",
    principal: null,
    source: "test",
    data: {},
  };
}

/** A sink that records its batches and fails while `failing` is set. */
function recordingSink(name = "recording") {
  const batches: string[][] = [];
  const state = { failing: false, attempts: 0, closed: 0 };
  const sink: SignalSink = {
    name,
    async deliver(events) {
      state.attempts++;
      if (state.failing) throw new Error("down");
      batches.push(events.map((e) => e.id));
    },
    async close() {
      state.closed++;
    },
  };
  return { sink, batches, state, delivered: () => batches.flat() };
}

const until = async (condition: () => boolean, timeoutMs = 3000) => {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
};

describe("signal dispatcher", () => {
  it("delivers a burst in batches of at most batchSize, in order", async () => {
    const { sink, batches, delivered } = recordingSink();
    const dispatcher = createSignalDispatcher({ sinks: [sink], queueSize: 100, batchSize: 4, logger });
    for (let i = 0; i < 10; i++) dispatcher.emit(event(i));
    await until(() => delivered().length === 10);
    expect(delivered()).toEqual(Array.from({ length: 10 }, (_, i) => `event-${i}`));
    expect(batches.map((b) => b.length)).toEqual([4, 4, 2]);
    expect(dispatcher.stats()[0]).toMatchObject({ state: "connected", delivered: 10, queued: 0, dropped: 0 });
    await dispatcher.close(1000);
  });

  it("emits without waiting, even for a sink that never answers", async () => {
    const hanging: SignalSink = { name: "hanging", deliver: () => new Promise(() => {}), close: async () => {} };
    const dispatcher = createSignalDispatcher({ sinks: [hanging], queueSize: 10, batchSize: 10, logger, deliveryTimeoutMs: 50 });
    const started = performance.now();
    for (let i = 0; i < 5; i++) dispatcher.emit(event(i));
    expect(performance.now() - started).toBeLessThan(20);
    await dispatcher.close(100);
    expect(dispatcher.stats()[0].dropped).toBe(5);
  });

  it("retries a failed batch whole, with backoff, and resumes when the sink is back", async () => {
    const { sink, state, delivered } = recordingSink();
    const dispatcher = createSignalDispatcher({ sinks: [sink], queueSize: 100, batchSize: 10, logger, retryMs: 5, maxRetryMs: 20 });
    state.failing = true;
    for (let i = 0; i < 3; i++) dispatcher.emit(event(i));
    await until(() => state.attempts >= 3);
    expect(dispatcher.stats()[0].state).toBe("retrying");
    expect(dispatcher.stats()[0].retries).toBeGreaterThanOrEqual(2);
    state.failing = false;
    await until(() => delivered().length === 3);
    expect(delivered()).toEqual(["event-0", "event-1", "event-2"]);
    expect(dispatcher.stats()[0]).toMatchObject({ state: "connected", dropped: 0 });
    await dispatcher.close(1000);
  });

  it("drops and counts what does not fit a sink's queue, without touching another sink", async () => {
    const slow = recordingSink("slow");
    const fast = recordingSink("fast");
    slow.state.failing = true;
    const dispatcher = createSignalDispatcher({ sinks: [slow.sink, fast.sink], queueSize: 5, batchSize: 5, logger, retryMs: 1000, maxRetryMs: 1000 });
    for (let i = 0; i < 8; i++) dispatcher.emit(event(i));
    await until(() => fast.delivered().length === 5);
    await until(() => slow.state.attempts >= 1);
    for (let i = 8; i < 12; i++) dispatcher.emit(event(i));
    await until(() => fast.delivered().length === 9);
    const [slowStats, fastStats] = dispatcher.stats();
    expect(slowStats).toMatchObject({ name: "slow", queued: 5, dropped: 7 });
    expect(fastStats).toMatchObject({ name: "fast", dropped: 3 });
    await dispatcher.close(50);
  });

  it("bounds a sink's queue by weight too", async () => {
    const { sink, state } = recordingSink();
    state.failing = true;
    const dispatcher = createSignalDispatcher({ sinks: [sink], queueSize: 1000, maxQueueBytes: 1000, batchSize: 10, logger, retryMs: 1000 });
    for (let i = 0; i < 5; i++) dispatcher.emit(event(i), 300);
    expect(dispatcher.stats()[0]).toMatchObject({ queued: 3, dropped: 2 });
    await dispatcher.close(10);
  });

  it("flushes on close, retrying a sink at once, then closes every sink", async () => {
    const { sink, state, delivered } = recordingSink();
    const dispatcher = createSignalDispatcher({ sinks: [sink], queueSize: 100, batchSize: 10, logger, retryMs: 60_000, maxRetryMs: 60_000 });
    state.failing = true;
    dispatcher.emit(event(1));
    await until(() => state.attempts >= 1);
    state.failing = false;
    await dispatcher.close(2000);
    expect(delivered()).toEqual(["event-1"]);
    expect(state.closed).toBe(1);
    dispatcher.emit(event(2));
    expect(dispatcher.stats()[0].dropped).toBe(1);
  });

  it("contains a sink that throws synchronously, and names two sinks of one kind apart", async () => {
    const throwing: SignalSink = {
      name: "module",
      deliver: () => {
        throw new Error("bug in the sink");
      },
      close: async () => {},
    };
    const ok = recordingSink("module");
    const dispatcher = createSignalDispatcher({ sinks: [throwing, ok.sink], queueSize: 10, batchSize: 10, logger, retryMs: 1000 });
    dispatcher.emit(event(1));
    await until(() => ok.delivered().length === 1);
    expect(dispatcher.stats().map((s) => [s.name, s.state])).toEqual([
      ["module-1", "retrying"],
      ["module-2", "connected"],
    ]);
    await dispatcher.close(10);
  });
});

describe("signal dispatcher with lingerMs", () => {
  it("waits up to lingerMs for a batch to fill, and delivers a full one at once", async () => {
    const { sink, batches } = recordingSink();
    const dispatcher = createSignalDispatcher({ sinks: [sink], queueSize: 100, batchSize: 3, lingerMs: 80, logger });
    dispatcher.emit(event(1));
    await new Promise((resolve) => setTimeout(resolve, 20));
    dispatcher.emit(event(2));
    await until(() => batches.length === 1);
    expect(batches[0]).toEqual(["event-1", "event-2"]);
    for (let i = 3; i < 6; i++) dispatcher.emit(event(i));
    const started = Date.now();
    await until(() => batches.length === 2);
    expect(Date.now() - started).toBeLessThan(60);
    expect(batches[1]).toEqual(["event-3", "event-4", "event-5"]);
    await dispatcher.close(1000);
  });

  it("does not linger at shutdown", async () => {
    const { sink, delivered } = recordingSink();
    const dispatcher = createSignalDispatcher({ sinks: [sink], queueSize: 100, batchSize: 10, lingerMs: 10_000, logger });
    dispatcher.emit(event(1));
    const started = Date.now();
    await dispatcher.close(5000);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(delivered()).toEqual(["event-1"]);
  });
});

describe("signal dispatcher with a write-ahead log", () => {
  const newBase = () => join(mkdtempSync(join(tmpdir(), "passthrough-signals-")), "instance.wal");

  it("has a call's committed events on disk until every sink took them: the next start delivers them, ids unchanged", async () => {
    const writeAheadFile = newBase();
    const slow = recordingSink("slow");
    const fast = recordingSink("fast");
    slow.state.failing = true;
    const dead = createSignalDispatcher({ sinks: [fast.sink, slow.sink], queueSize: 100, batchSize: 10, logger, writeAheadFile, retryMs: 5, maxRetryMs: 10 });
    const call = [event(1), event(2), event(3)];
    for (const e of call) dead.emit(e);
    dead.commit(call);
    await until(() => fast.delivered().length === 3);
    // One sink took them, the other did not: the process dies (no close) and the next one starts on the same file.
    const { sink, delivered } = recordingSink();
    const next = createSignalDispatcher({ sinks: [sink], queueSize: 100, batchSize: 10, logger, writeAheadFile });
    await until(() => delivered().length === 3);
    expect(delivered()).toEqual(["event-1", "event-2", "event-3"]);
    await next.close(1000);
    expect(segmentFiles(writeAheadFile)).toEqual([]);
    await dead.close(10);
  });

  it("lets go of what every sink took, and leaves no file after a clean close", async () => {
    const writeAheadFile = newBase();
    const { sink, delivered } = recordingSink();
    const dispatcher = createSignalDispatcher({ sinks: [sink], queueSize: 10_000, batchSize: 100, logger, writeAheadFile });
    const big = { ...event(0), data: { body: "z".repeat(2000) } };
    for (let n = 0; n < 1000; n++) {
      const events = [{ ...big, id: `event-${n}` }];
      dispatcher.emit(events[0]);
      dispatcher.commit(events);
      if (n % 100 === 99) await until(() => delivered().length === n + 1);
    }
    const bytes = segmentBytes(writeAheadFile);
    expect(bytes).toBeLessThan(256 * 1024);
    await dispatcher.close(1000);
    expect(segmentFiles(writeAheadFile)).toEqual([]);
  });

  it("keeps for the next start what shutdown's deadline cut off", async () => {
    const writeAheadFile = newBase();
    const down = recordingSink();
    down.state.failing = true;
    const dispatcher = createSignalDispatcher({ sinks: [down.sink], queueSize: 100, batchSize: 10, logger, writeAheadFile, retryMs: 5, maxRetryMs: 10 });
    dispatcher.emit(event(1));
    dispatcher.commit([event(1)]);
    await dispatcher.close(50);
    expect(dispatcher.stats()[0].dropped).toBe(1);
    const { sink, delivered } = recordingSink();
    const next = createSignalDispatcher({ sinks: [sink], queueSize: 100, batchSize: 10, logger, writeAheadFile });
    await until(() => delivered().length === 1);
    expect(delivered()).toEqual(["event-1"]);
    await next.close(1000);
  });
});

describe("signal dispatcher with a sink that takes a call's events at once", () => {
  const newBase = () => join(mkdtempSync(join(tmpdir(), "passthrough-signals-now-")), "instance.wal");

  /**
   * A recording sink with deliverNow, which throws while `failingNow` is set, and reports at the
   * end of the turn (as the log sink's file does) that it could not write while `failingLater` is.
   */
  function immediateSink() {
    const recording = recordingSink("now");
    const now: string[][] = [];
    const state = { failingNow: false, failingLater: false };
    const sink: SignalSink = {
      ...recording.sink,
      deliverNow(events, done) {
        if (state.failingNow) throw new Error("disk full");
        const failing = state.failingLater;
        if (!failing) now.push(events.map((e) => e.id));
        setImmediate(() => done(failing ? new Error("disk full") : undefined));
      },
    };
    return { ...recording, sink, now, nowState: state };
  }

  it("gets a call's events as one batch when it is committed, never queued, and nothing goes to the write-ahead log", async () => {
    const writeAheadFile = newBase();
    const { sink, now, batches } = immediateSink();
    const dispatcher = createSignalDispatcher({ sinks: [sink], queueSize: 100, batchSize: 10, logger, writeAheadFile });
    const call = [event(1), event(2), event(3)];
    for (const e of call) dispatcher.emit(e);
    expect(now).toEqual([]);
    expect(dispatcher.stats()[0].queued).toBe(0);
    dispatcher.commit(call);
    expect(now).toEqual([["event-1", "event-2", "event-3"]]);
    await endOfTurn();
    expect(dispatcher.stats()[0]).toMatchObject({ queued: 0, delivered: 3, state: "connected" });
    expect(segmentFiles(writeAheadFile)).toEqual([]);
    await dispatcher.close(1000);
    expect(batches).toEqual([]);
  });

  it("queues and retries what deliverNow refused, keeps it in the write-ahead log meanwhile, and keeps the order after it", async () => {
    const writeAheadFile = newBase();
    const { sink, now, nowState, delivered, state } = immediateSink();
    nowState.failingNow = true;
    state.failing = true;
    const dispatcher = createSignalDispatcher({ sinks: [sink], queueSize: 100, batchSize: 10, logger, writeAheadFile, retryMs: 5, maxRetryMs: 10 });
    dispatcher.commit([event(1), event(2)]);
    expect(dispatcher.stats()[0]).toMatchObject({ queued: 2, state: "retrying" });
    expect(segmentFiles(writeAheadFile)).toHaveLength(1);
    // While the queue holds events, a later call's events wait behind them rather than overtake.
    nowState.failingNow = false;
    dispatcher.commit([event(3)]);
    expect(now).toEqual([]);
    state.failing = false;
    await until(() => delivered().length === 3);
    expect(delivered()).toEqual(["event-1", "event-2", "event-3"]);
    dispatcher.commit([event(4)]);
    expect(now).toEqual([["event-4"]]);
    await dispatcher.close(1000);
    expect(segmentFiles(writeAheadFile)).toEqual([]);
  });

  it("queues and retries what deliverNow could not write by the end of the turn, and keeps it in the write-ahead log from then on", async () => {
    const writeAheadFile = newBase();
    const { sink, now, nowState, delivered, state } = immediateSink();
    nowState.failingLater = true;
    state.failing = true;
    const dispatcher = createSignalDispatcher({ sinks: [sink], queueSize: 100, batchSize: 10, logger, writeAheadFile, retryMs: 5, maxRetryMs: 10 });
    dispatcher.commit([event(1), event(2)]);
    expect(dispatcher.stats()[0].queued).toBe(0);
    await endOfTurn();
    expect(dispatcher.stats()[0]).toMatchObject({ queued: 2, delivered: 0, state: "retrying" });
    await endOfTurn();
    expect(WriteAheadLog.read(writeAheadFile).map((line) => (JSON.parse(line) as SignalEvent[]).map((e) => e.id))).toEqual([["event-1", "event-2"]]);
    nowState.failingLater = false;
    dispatcher.commit([event(3)]);
    state.failing = false;
    await until(() => delivered().length === 3);
    expect(delivered()).toEqual(["event-1", "event-2", "event-3"]);
    expect(now).toEqual([]);
    await dispatcher.close(1000);
    expect(segmentFiles(writeAheadFile)).toEqual([]);
  });

  it("beside a queued sink, the call's events still go to the write-ahead log, and each sink gets them once", async () => {
    const writeAheadFile = newBase();
    const immediate = immediateSink();
    const queued = recordingSink("queued");
    queued.state.failing = true;
    const dispatcher = createSignalDispatcher({ sinks: [immediate.sink, queued.sink], queueSize: 100, batchSize: 10, logger, writeAheadFile, retryMs: 5, maxRetryMs: 10 });
    const call = [event(1), event(2)];
    for (const e of call) dispatcher.emit(e);
    dispatcher.commit(call);
    expect(immediate.now).toEqual([["event-1", "event-2"]]);
    expect(segmentFiles(writeAheadFile)).toHaveLength(1);
    queued.state.failing = false;
    await until(() => queued.delivered().length === 2);
    await dispatcher.close(1000);
    expect(immediate.delivered()).toEqual([]);
    expect(queued.delivered()).toEqual(["event-1", "event-2"]);
  });

  it("gets through its queue what a process that died left in the write-ahead log", async () => {
    const writeAheadFile = newBase();
    const down = recordingSink("down");
    down.state.failing = true;
    const dead = createSignalDispatcher({ sinks: [down.sink], queueSize: 100, batchSize: 10, logger, writeAheadFile, retryMs: 5, maxRetryMs: 10 });
    for (const e of [event(1), event(2)]) dead.emit(e);
    dead.commit([event(1), event(2)]);
    // It dies after the turn in which it answered the call.
    await endOfTurn();
    const { sink, now, delivered } = immediateSink();
    const next = createSignalDispatcher({ sinks: [sink], queueSize: 100, batchSize: 10, logger, writeAheadFile });
    await until(() => delivered().length === 2);
    expect(delivered()).toEqual(["event-1", "event-2"]);
    expect(now).toEqual([]);
    await next.close(1000);
    await dead.close(10);
  });
});
