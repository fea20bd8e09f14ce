import { describe, expect, it, vi } from "vitest";
import { pino } from "pino";
import { parseConfig } from "../../src/config/load.js";
import type { SignalEvent, SinkContext } from "../../src/signals/sink.js";
import { createSink } from "../../src/signals/sinks/index.js";
import { loadModuleSink } from "../../src/signals/sinks/module.js";
import { runSinkContract, sampleEvents, silentContext } from "./sink.contract.js";
import { timed } from "./support/services.js";

const fixture = (name: string) => `test/signals/fixtures/${name}.mjs`;
const never = () => new AbortController().signal;

runSinkContract({
  name: "module (default export)",
  newSink: async () => {
    const into: SignalEvent[] = [];
    return { sink: await loadModuleSink({ path: fixture("recording-sink"), options: { into } }, silentContext), readBack: async () => into };
  },
});

runSinkContract({
  name: "module (createSink export)",
  newSink: async () => {
    const into: SignalEvent[] = [];
    return { sink: await loadModuleSink({ path: fixture("named-factory-sink"), options: { into } }, silentContext), readBack: async () => into };
  },
});

/** A context whose warnings the test can read. */
function watchedContext(): { context: SinkContext; warn: ReturnType<typeof vi.fn> } {
  const logger = pino({ level: "silent" });
  const warn = vi.fn();
  logger.warn = warn as unknown as typeof logger.warn;
  return { context: { logger }, warn };
}

describe("a sink module", () => {
  it("resolves its path against the working directory, keeps its name, and names itself module without one", async () => {
    const into: SignalEvent[] = [];
    const named = await loadModuleSink({ path: `./${fixture("recording-sink")}`, options: { into } }, silentContext);
    expect(named.name).toBe("recording");
    const options = { into, closed: 0 };
    const unnamed = await loadModuleSink({ path: fixture("named-factory-sink"), options }, silentContext);
    expect(unnamed.name).toBe("module");
    await unnamed.close();
    await unnamed.close();
    expect(options.closed).toBe(1);
  });

  it("is created from the configuration through createSink, with its options", async () => {
    const into: SignalEvent[] = [];
    const config = parseConfig({ signals: { sinks: [{ type: "module", path: fixture("recording-sink"), options: { into } }] } });
    const sink = await createSink(config.signals.sinks[0], silentContext);
    const events = sampleEvents(2);
    await sink.deliver(events, never());
    await sink.close();
    expect(into).toEqual(events);
  });

  it.each([
    ["a missing module", "does-not-exist", /could not be loaded/],
    ["a module without a factory", "no-factory-sink", /exports no factory: a default export or createSink/],
    ["a factory that throws", "throws-at-construction-sink", /failed to create its sink: the fixture cannot reach its broker/],
    ["a factory whose result is no sink", "not-a-sink", /must return an object with deliver and close functions/],
  ])("refuses %s with an error naming the path", async (_, name, message) => {
    const path = fixture(name);
    const error = await loadModuleSink({ path, options: {} }, silentContext).catch((reason: unknown) => reason);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toContain(`signal sink module ${path}`);
    expect((error as Error).message).toMatch(message);
  });

  it("turns a deliver that throws into a rejection, and logs a close that throws", async () => {
    const { context, warn } = watchedContext();
    const sink = await loadModuleSink({ path: fixture("throwing-sink") }, context);
    let delivery: Promise<void> | undefined;
    expect(() => (delivery = sink.deliver(sampleEvents(1), never()))).not.toThrow();
    await expect(delivery).rejects.toThrow("deliver threw synchronously");
    await expect(sink.close()).resolves.toBeUndefined();
    await expect(sink.close()).resolves.toBeUndefined();
    expect(warn).toHaveBeenCalledTimes(1);
    expect(warn.mock.calls[0][0]).toMatchObject({ sink: "throwing", path: fixture("throwing-sink"), error: "close threw synchronously" });
  });

  it("rejects a deliver that returns no promise, and logs a close that rejects", async () => {
    const { context, warn } = watchedContext();
    const sink = await loadModuleSink({ path: fixture("synchronous-sink") }, context);
    await expect(sink.deliver(sampleEvents(1), never())).rejects.toThrow(/deliver must return a promise/);
    await sink.close();
    expect(warn.mock.calls[0][0]).toMatchObject({ error: "close rejected" });
  });

  it("rejects a deliver that never settles as soon as the signal aborts, though the module ignores it", async () => {
    const sink = await loadModuleSink({ path: fixture("hanging-sink") }, silentContext);
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error("the dispatcher's timeout")), 100);
    const { ms, error } = await timed(sink.deliver(sampleEvents(1), controller.signal));
    expect((error as Error).message).toMatch(/aborted/);
    expect(((error as Error).cause as Error).message).toBe("the dispatcher's timeout");
    expect(ms).toBeLessThan(1000);
    await sink.close();
  });
});
