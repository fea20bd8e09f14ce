import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { WriteAheadLog } from "../../src/durable/write-ahead-log.js";
import { createLogger } from "../../src/logging/logger.js";
import { captureLogger } from "../journal/support.js";
import { segmentBytes, segmentFiles } from "./support.js";

const logger = createLogger({ level: "silent" });

/** Counts the writes to files, and makes them fail while `failing` is set. */
const disk = vi.hoisted(() => ({ writes: 0, failing: false }));
vi.mock("node:fs", async (importOriginal) => {
  const actual = await importOriginal<typeof import("node:fs")>();
  const writeSync = ((...args: Parameters<typeof actual.writeSync>) => {
    disk.writes++;
    if (disk.failing) throw Object.assign(new Error("no space left on device"), { code: "ENOSPC" });
    return actual.writeSync(...args);
  }) as typeof actual.writeSync;
  return { ...actual, default: { ...actual, writeSync }, writeSync };
});

const newBase = () => join(mkdtempSync(join(tmpdir(), "passthrough-wal-")), "wal", "instance.wal");
const line = (n: number) => JSON.stringify({ n, body: "x".repeat(1000) });
/** Appends are written at the end of the turn they were made in. */
const endOfTurn = () => new Promise(setImmediate);

describe("the write-ahead log", () => {
  it("has every line appended in a turn on disk by the turn's end, all in one write: a log never closed is recovered whole, in order", async () => {
    const base = newBase();
    const log = new WriteAheadLog(base, "test", logger);
    const before = disk.writes;
    for (let n = 1; n <= 10; n++) log.append(line(n), n);
    expect(WriteAheadLog.read(base)).toEqual([]);
    await endOfTurn();
    expect(disk.writes - before).toBe(1);
    // Nothing closed it: as after a SIGKILL, the next process reads what is there.
    expect(WriteAheadLog.read(base)).toEqual(Array.from({ length: 10 }, (_, i) => line(i + 1)));
  });

  it("lets go of what was released: wholly released segments are deleted, so a busy log stays small", async () => {
    const base = newBase();
    const log = new WriteAheadLog(base, "test", logger);
    // 10,000 lines of 1 KB, released as they go, as a store confirming batches does.
    for (let n = 1; n <= 10_000; n++) {
      log.append(line(n), n);
      if (n % 100 === 0) log.release(n - 50);
    }
    await endOfTurn();
    const bytes = segmentBytes(base);
    expect(bytes).toBeLessThan(5 * 1024 * 1024);
    const recovered = WriteAheadLog.read(base);
    // What was not released is all there, to the last line.
    expect(recovered.slice(-50)).toEqual(Array.from({ length: 50 }, (_, i) => line(9951 + i)));
  });

  it("keeps across segments what was not released: a long outage is recovered whole", async () => {
    const base = newBase();
    const log = new WriteAheadLog(base, "test", logger);
    for (let n = 1; n <= 10_000; n++) log.append(line(n), n);
    await endOfTurn();
    expect(segmentFiles(base).length).toBeGreaterThan(1);
    const lines = WriteAheadLog.read(base);
    expect(lines.length).toBe(10_000);
    expect(lines[0]).toBe(line(1));
    expect(lines[9_999]).toBe(line(10_000));
  });

  it("removes its files on a close after everything was released, and keeps them otherwise", () => {
    const released = newBase();
    const one = new WriteAheadLog(released, "test", logger);
    one.append(line(1), 1);
    one.release(1);
    one.close();
    expect(segmentFiles(released)).toEqual([]);

    const kept = newBase();
    const two = new WriteAheadLog(kept, "test", logger);
    two.append(line(1), 1);
    two.append(line(2), 2);
    two.release(1);
    two.close();
    expect(WriteAheadLog.read(kept)).toEqual([line(1), line(2)]);
  });

  it("appends after the segments a previous process left, which adoptLeftovers hands over and then deletes", async () => {
    const base = newBase();
    const dead = new WriteAheadLog(base, "test", logger);
    dead.append(line(1), 1);
    await endOfTurn();
    const next = new WriteAheadLog(base, "test", logger);
    next.append(line(2), 1);
    await endOfTurn();
    let recovered: string[] = [];
    next.adoptLeftovers((lines) => (recovered = lines));
    expect(recovered).toEqual([line(1)]);
    expect(WriteAheadLog.read(base)).toEqual([line(2)]);
  });

  it("never throws when the disk refuses: it logs once per outage, and again when it writes", () => {
    const dir = mkdtempSync(join(tmpdir(), "passthrough-wal-"));
    writeFileSync(join(dir, "not-a-folder"), "");
    const log = captureLogger();
    const broken = new WriteAheadLog(join(dir, "not-a-folder", "instance.wal"), "test", log.logger);
    expect(() => {
      broken.append(line(1), 1);
      broken.append(line(2), 2);
      broken.release(2);
      broken.close();
    }).not.toThrow();
    expect(log.lines.filter((entry) => String(entry.msg).includes("could not be written"))).toHaveLength(1);
  });

  it("logs a write that fails at the turn's end once, and that it writes again once it does", async () => {
    const log = captureLogger();
    const wal = new WriteAheadLog(newBase(), "test", log.logger);
    disk.failing = true;
    try {
      wal.append(line(1), 1);
      await endOfTurn();
      wal.append(line(2), 2);
      await endOfTurn();
    } finally {
      disk.failing = false;
    }
    wal.append(line(3), 3);
    await endOfTurn();
    const messages = log.lines.map((entry) => String(entry.msg));
    expect(messages.filter((msg) => msg.includes("could not be written"))).toHaveLength(1);
    expect(messages.filter((msg) => msg.includes("writable again"))).toHaveLength(1);
    expect(WriteAheadLog.read(wal.base)).toEqual([line(3)]);
  });
});
