import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import type { SignalEvent } from "../../src/signals/sink.js";
import { createLogger } from "../../src/logging/logger.js";
import { createSink } from "../../src/signals/sinks/index.js";
import { createLogSink } from "../../src/signals/sinks/log.js";
import { runSinkContract, sampleEvents } from "./sink.contract.js";

let folder: string;
beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), "passthrough-log-sink-"));
});
afterAll(async () => {
  await rm(folder, { recursive: true, force: true });
});

let files = 0;
const newFile = () => join(folder, `sub-${files}`, `signals-${files++}.jsonl`);

async function readLines(path: string): Promise<SignalEvent[]> {
  const text = await readFile(path, "utf8").catch(() => "");
  expect(text === "" || text.endsWith("\n")).toBe(true);
  return text.split("\n").filter((line) => line !== "").map((line) => JSON.parse(line) as SignalEvent);
}

/** Captures what is written to standard output, answering each write's callback as the stream would; `hold` delays the callbacks. */
function captureStdout() {
  const chunks: string[] = [];
  const held: Array<() => void> = [];
  let holding = false;
  const spy = vi.spyOn(process.stdout, "write").mockImplementation(((chunk: string | Uint8Array, ...rest: unknown[]) => {
    chunks.push(typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8"));
    const callback = rest.find((arg): arg is (error?: Error | null) => void => typeof arg === "function");
    if (callback) (holding ? held.push(() => callback(null)) : queueMicrotask(() => callback(null)));
    return !holding;
  }) as typeof process.stdout.write);
  return {
    chunks,
    spy,
    hold: () => (holding = true),
    release: () => {
      holding = false;
      for (const answer of held.splice(0)) answer();
    },
    events: () => chunks.join("").split("\n").filter((line) => line !== "").map((line) => JSON.parse(line) as SignalEvent),
  };
}

runSinkContract({
  name: "log to a file",
  newSink: async () => {
    const path = newFile();
    return { sink: createLogSink({ path }), readBack: () => readLines(path) };
  },
});

runSinkContract({
  name: "log to standard output",
  newSink: async () => {
    const capture = captureStdout();
    return { sink: createLogSink(), readBack: async () => capture.events(), cleanup: async () => capture.spy.mockRestore() };
  },
});

describe("the log sink", () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("to a file, appends a call's events by the end of the turn deliverNow was called in, then says so; the same lines deliver writes; to standard output it has no deliverNow", async () => {
    const path = newFile();
    const sink = createLogSink({ path });
    const events = sampleEvents(3);
    const told: unknown[] = [];
    sink.deliverNow!(events.slice(0, 2), (error) => told.push(error));
    expect(told).toEqual([]);
    await new Promise(setImmediate);
    expect(told).toEqual([undefined]);
    expect(await readLines(path)).toEqual(events.slice(0, 2));
    await sink.deliver(events.slice(2), new AbortController().signal);
    sink.deliverNow!(events.slice(0, 1), (error) => told.push(error));
    // Closing writes what waits for the turn's end first.
    await sink.close();
    expect(told).toEqual([undefined, undefined]);
    expect(await readFile(path, "utf8")).toBe([...events, events[0]].map((event) => `${JSON.stringify(event)}\n`).join(""));
    expect(() => sink.deliverNow!(events, () => {})).toThrow(/closed/);
    expect(createLogSink().deliverNow).toBeUndefined();
  });

  it("writes one line per event, each exactly JSON.stringify(event), a batch in one write", async () => {
    const capture = captureStdout();
    const sink = createLogSink();
    const events = sampleEvents(3);
    await sink.deliver(events, new AbortController().signal);
    await sink.close();
    expect(capture.chunks).toEqual([events.map((event) => `${JSON.stringify(event)}\n`).join("")]);
  });

  it("leaves request and response bodies out where keepBodies says no, asked of each event", async () => {
    const capture = captureStdout();
    let keep = false;
    const sink = createLogSink({ keepBodies: () => keep });
    const event: SignalEvent = { ...sampleEvents(1)[0], signal: "chat_completion_request", data: { body: { prompt: "a secret prompt" }, other: 1 } };
    await sink.deliver([event], new AbortController().signal);
    keep = true;
    await sink.deliver([event], new AbortController().signal);
    await sink.close();
    expect(capture.chunks).toEqual([`${JSON.stringify({ ...event, data: { other: 1 } })}\n`, `${JSON.stringify(event)}\n`]);
  });

  it("as configured, keeps the bodies only of events emitted after logPrompt was turned on, whenever they are delivered", async () => {
    const path = newFile();
    const logging = { logPrompt: true, logPromptSince: Date.parse("2030-01-01T00:00:01.000Z") };
    const sink = await createSink({ type: "log", path }, { logger: createLogger({ level: "silent" }), logging });
    const at = (time: string): SignalEvent => ({ ...sampleEvents(1)[0], time, data: { body: { prompt: time } } });
    await sink.deliver([at("2030-01-01T00:00:00.999Z"), at("2030-01-01T00:00:01.000Z")], new AbortController().signal);
    logging.logPrompt = false;
    await sink.deliver([at("2030-01-01T00:00:02.000Z")], new AbortController().signal);
    await sink.close();
    expect((await readLines(path)).map((event) => "body" in event.data)).toEqual([false, true, false]);
  });

  it("resolves only once standard output took the write, and a delivery aborted while waiting rejects", async () => {
    const capture = captureStdout();
    const sink = createLogSink();
    capture.hold();
    let settled = false;
    const delivery = sink.deliver(sampleEvents(1), new AbortController().signal).finally(() => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(settled).toBe(false);
    const controller = new AbortController();
    const waiting = sink.deliver(sampleEvents(1), controller.signal);
    controller.abort();
    await expect(waiting).rejects.toThrow(/aborted/);
    capture.release();
    await delivery;
    await sink.close();
    // The aborted batch, still waiting for the first write, was never written.
    expect(capture.events()).toHaveLength(1);
  });

  it("appends to a file that already has lines, and the file is complete once close resolves", async () => {
    const path = newFile();
    const before = sampleEvents(1);
    const first = createLogSink({ path });
    await first.deliver(before, new AbortController().signal);
    await first.close();
    const second = createLogSink({ path });
    const events = sampleEvents(500);
    const deliveries = [0, 100, 200, 300, 400].map((start) => second.deliver(events.slice(start, start + 100), new AbortController().signal));
    await second.close();
    await Promise.all(deliveries);
    expect(await readLines(path)).toEqual([...before, ...events]);
  });

  it("rejects while the file cannot be opened, naming it, and writes once it can", async () => {
    const blocker = join(folder, `blocker-${files++}`);
    await writeFile(blocker, "a file where a folder should be");
    const path = join(blocker, "signals.jsonl");
    const sink = createLogSink({ path });
    await expect(sink.deliver(sampleEvents(1), new AbortController().signal)).rejects.toThrow(`the log sink could not open ${path}`);
    await rm(blocker);
    const events = sampleEvents(2);
    await sink.deliver(events, new AbortController().signal);
    await sink.close();
    expect(await readLines(path)).toEqual(events);
  });

  it("refuses an empty path when it is built", () => {
    expect(() => createLogSink({ path: "" })).toThrow(/path/);
  });
});
