import { afterEach, describe, expect, it } from "vitest";
import { pino } from "pino";
import type { SignalEvent, SignalName, SignalSink, SinkContext } from "../../src/signals/sink.js";

/** One sink under test, and how to see what reached the other side. */
export interface SinkUnderTest {
  readonly sink: SignalSink;
  /** Every event the other side has received from this sink so far, in the order received. */
  readBack(): Promise<SignalEvent[]>;
  /** Removes what the sink wrote (a stream, a key, a file), after the sink is closed. */
  cleanup?(): Promise<void>;
}

export interface SinkContractOptions {
  readonly name: string;
  /** A new sink writing to a place of its own, empty. */
  readonly newSink: () => Promise<SinkUnderTest>;
}

/** A context whose logger writes nothing. */
export const silentContext: SinkContext = { logger: pino({ level: "silent" }) };

const SIGNALS: readonly SignalName[] = ["chat_started", "chat_completion_request", "chat_completion_response", "chat_finished", "chat_response_failure"];
let sampleCount = 0;

/** `count` events with every field set, unique ids, and nested data with text that JSON must escape or encode. */
export function sampleEvents(count: number): SignalEvent[] {
  const run = `${process.pid}-${Date.now().toString(36)}`;
  return Array.from({ length: count }, () => {
    const n = sampleCount++;
    return {
      signal: SIGNALS[n % SIGNALS.length],
      id: `evt-${run}-${n}`,
      request_id: `req-${run}-${Math.floor(n / 4)}`,
      journal_key: n.toString(16).padStart(64, "0"),
      time: new Date(Date.UTC(2026, 0, 2, 3, 4, 5, n % 1000)).toISOString(),
      provider: n % 3 === 0 ? null : "openai",
      protocol: (["grpc", "grpc-web", "connect", "rest"] as const)[n % 4],
      principal: n % 5 === 0 ? null : `key_${n}`,
      source: "passthrough/test-instance",
      data: {
        model: "gpt-4o-mini",
        messages: [{ role: "user", content: `héllo 世界 🚀 "quoted" \\ back\nslash \u2028 #${n}` }],
        nested: { list: [1, 2.5, true, null, "ü"], empty: {}, deeper: { n } },
      },
    };
  });
}

const never = () => new AbortController().signal;

/**
 * The contract of src/signals/sink.ts, run against every sink: a batch arrives whole and in
 * order, batches in sequence keep their order, an aborted delivery rejects without
 * throwing, and close is safe to repeat.
 */
export function runSinkContract({ name, newSink }: SinkContractOptions): void {
  describe(`signal sink contract: ${name}`, () => {
    const opened: SinkUnderTest[] = [];
    const open = async () => {
      const made = await newSink();
      opened.push(made);
      return made;
    };
    afterEach(async () => {
      for (const made of opened.splice(0)) {
        await made.sink.close();
        await made.cleanup?.();
      }
    });

    it("names itself", async () => {
      const { sink } = await open();
      expect(sink.name).toMatch(/^[a-z][a-z0-9-]*$/);
    });

    it("delivers a batch: the other side reads back exactly those events, in order, every field equal", async () => {
      const { sink, readBack } = await open();
      const events = sampleEvents(5);
      await expect(sink.deliver(events, never())).resolves.toBeUndefined();
      expect(await readBack()).toEqual(events);
    });

    it("delivers batches in sequence, and a batch of one, keeping the order across them", async () => {
      const { sink, readBack } = await open();
      const [first, second, third] = [sampleEvents(3), sampleEvents(4), sampleEvents(1)];
      await sink.deliver(first, never());
      await sink.deliver(second, never());
      await sink.deliver(third, never());
      expect(await readBack()).toEqual([...first, ...second, ...third]);
    });

    it("keeps the order of a large batch", async () => {
      const { sink, readBack } = await open();
      const events = sampleEvents(200);
      await sink.deliver(events, never());
      expect((await readBack()).map((event) => event.id)).toEqual(events.map((event) => event.id));
    });

    it("rejects, without throwing, a delivery whose signal has already aborted, and delivers nothing", async () => {
      const { sink, readBack } = await open();
      const controller = new AbortController();
      controller.abort(new Error("shutting down"));
      let delivery: Promise<void> | undefined;
      expect(() => (delivery = sink.deliver(sampleEvents(2), controller.signal))).not.toThrow();
      await expect(delivery).rejects.toBeInstanceOf(Error);
      expect(await readBack()).toEqual([]);
    });

    it("closes, and a second close is harmless; a delivery after close rejects without throwing", async () => {
      const { sink, readBack } = await open();
      const events = sampleEvents(2);
      await sink.deliver(events, never());
      await expect(sink.close()).resolves.toBeUndefined();
      await expect(sink.close()).resolves.toBeUndefined();
      let delivery: Promise<void> | undefined;
      expect(() => (delivery = sink.deliver(sampleEvents(1), never()))).not.toThrow();
      await expect(delivery).rejects.toBeInstanceOf(Error);
      expect(await readBack()).toEqual(events);
    });
  });
}
