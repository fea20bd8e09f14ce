import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { WriteAheadLog } from "../../src/durable/write-ahead-log.js";
import { segmentBytes, segmentFiles } from "../durable/support.js";
import { reviveEntry, spoolLine } from "../../src/journal/spool.js";
import { createJournalWriter, type JournalWriter, type JournalWriterOptions } from "../../src/journal/writer.js";
import type { JournalEntry, Store } from "../../src/store/store.js";
import { entry } from "../store/contract-journal.js";
import { captureLogger, faultyStore, tempDir, until } from "./support.js";

/** Entries with distinct keys and times, a body each. */
const entries = (from: number, count: number): JournalEntry[] =>
  Array.from({ length: count }, (_, i) => entry(from + i, { time: new Date(Date.UTC(2030, 0, 1) + from + i) }));

const spoolLines = (path: string) => readFileSync(path, "utf8").split("\n").filter(Boolean);

/**
 * The writer's behaviour over one store implementation: batching, the bounded queue, the
 * spool when the store fails or hangs, its replay in order and at start, and a disk that fails.
 */
export function writerCases(newStore: () => Promise<Store>): void {
  const open: Array<{ writer: JournalWriter; store: Store }> = [];
  afterEach(async () => {
    for (const { writer, store } of open.splice(0)) {
      await writer.close(1000);
      await store.close();
    }
  });

  async function setup(options: Partial<JournalWriterOptions> = {}) {
    const store = faultyStore(await newStore());
    const log = captureLogger();
    const spoolFile = join(tempDir(), "spool", "journal.spool");
    const batches: number[] = [];
    const writer = createJournalWriter({
      store,
      queueSize: 100,
      batchSize: 10,
      spoolFile,
      logger: log.logger,
      retryMs: 10,
      maxRetryMs: 50,
      writeTimeoutMs: 500,
      onBatchWritten: (_ms, count) => batches.push(count),
      ...options,
    });
    open.push({ writer, store });
    const stored = async (list: readonly JournalEntry[]) => Promise.all(list.map((e) => store.getJournalEntry(e.key)));
    return { store, writer, log, spoolFile, batches, stored };
  }

  describe("the journal writer", () => {
    it("queues without waiting and writes in batches of at most batchSize, off the call path", async () => {
      const { writer, batches, stored } = await setup();
      const list = entries(1, 25);
      for (const e of list) writer.write(e);
      expect(writer.stats()).toMatchObject({ queued: 25, written: 0, spooled: 0 });
      expect(writer.stats().queuedBytes).toBeGreaterThan(0);
      await writer.flush();
      expect(writer.stats()).toMatchObject({ queued: 0, queuedBytes: 0, written: 25, dropped: 0, storeReachable: true });
      expect(writer.stats().lastBatchMs).toBeGreaterThanOrEqual(0);
      expect(batches.reduce((a, b) => a + b, 0)).toBe(25);
      expect(Math.max(...batches)).toBeLessThanOrEqual(10);
      expect(await stored(list)).toEqual(list);
    });

    it("writes a lone entry without a timer's delay", async () => {
      const { writer, store } = await setup();
      writer.write(entries(1, 1)[0]);
      await until(() => writer.stats().written === 1, "the entry is written", 1000);
      expect(store.attempts).toBe(1);
    });

    it("with lingerMs, waits for a batch to fill: entries written close together share one transaction", async () => {
      const { writer, store } = await setup({ lingerMs: 100, batchSize: 10 });
      const list = entries(1, 4);
      writer.write(list[0]);
      await new Promise((resolve) => setTimeout(resolve, 20));
      for (const e of list.slice(1)) writer.write(e);
      await until(() => writer.stats().written === 4, "the entries are written");
      expect(store.attempts).toBe(1);
      expect(store.confirmed.map((batch) => batch.length)).toEqual([4]);
    });

    it("with lingerMs, does not wait on flush", async () => {
      const { writer } = await setup({ lingerMs: 10_000 });
      writer.write(entries(1, 1)[0]);
      const started = Date.now();
      await writer.flush();
      expect(Date.now() - started).toBeLessThan(2000);
      expect(writer.stats().written).toBe(1);
    });

    it("keeps entries in the queue while the store fails, and writes them when it answers again", async () => {
      const { writer, store, stored } = await setup();
      store.fault = "down";
      const list = entries(1, 20);
      for (const e of list) writer.write(e);
      await until(() => store.attempts >= 3, "the writer retried");
      expect(writer.stats()).toMatchObject({ queued: 20, spooled: 0, written: 0, storeReachable: false });
      store.fault = "none";
      await until(() => writer.stats().written === 20, "the queue is written");
      expect(writer.stats()).toMatchObject({ queued: 0, spooled: 0, storeReachable: true });
      expect(await stored(list)).toEqual(list);
    });

    it("spools past the bounded queue while the store is down, then replays in order and removes the spool", async () => {
      const { writer, store, spoolFile, log, stored } = await setup({ queueSize: 5 });
      store.fault = "down";
      const list = entries(1, 40);
      for (const e of list) {
        writer.write(e);
        expect(writer.stats().queued).toBeLessThanOrEqual(5);
        if (e.key.endsWith("14")) await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await writer.flush();
      expect(writer.stats()).toMatchObject({ queued: 0, spoolPending: 0, spooled: 40, written: 0, dropped: 0 });
      expect(spoolLines(spoolFile)).toHaveLength(40);
      expect(log.text()).toContain("journal entries go to the spool file");
      // Written while the spool is not empty: behind the spooled ones.
      const later = entries(100, 5);
      for (const e of later) writer.write(e);
      store.fault = "none";
      await until(() => writer.stats().written === 45 && writer.stats().spooled === 0 && !existsSync(spoolFile), "the spool is replayed and removed");
      expect(await stored([...list, ...later])).toEqual([...list, ...later]);
      const order = [...new Set(store.confirmed.flat().map((e) => e.key))];
      expect(order).toEqual([...list, ...later].map((e) => e.key));
      // Once the spool is gone, entries go through the queue again.
      writer.write(entries(200, 1)[0]);
      expect(writer.stats().queued).toBe(1);
      await writer.flush();
      expect(writer.stats().written).toBe(46);
    });

    it("bounds the queue by bytes too", async () => {
      const body = "x".repeat(10_000);
      const { writer, store } = await setup({ maxQueueBytes: 35_000 });
      store.fault = "down";
      const list = entries(1, 10).map((e) => ({ ...e, responseBody: body }));
      for (const e of list.slice(0, 3)) writer.write(e);
      expect(writer.stats().queued).toBe(3);
      expect(writer.stats().queuedBytes).toBeLessThanOrEqual(35_000);
      // The fourth does not fit: the queue goes to the spool, and the rest after it.
      writer.write(list[3]);
      expect(writer.stats()).toMatchObject({ queued: 0, queuedBytes: 0, spoolPending: 4 });
      await writer.flush();
      for (const e of list.slice(4)) writer.write(e);
      await writer.flush();
      expect(writer.stats()).toMatchObject({ queued: 0, spooled: 10, dropped: 0 });
    });

    it("drops what waits for a disk that cannot keep up past twice maxQueueBytes, and logs it", async () => {
      const body = "x".repeat(10_000);
      const { writer, store, log } = await setup({ maxQueueBytes: 35_000 });
      store.fault = "down";
      // In one turn of the event loop nothing reaches the disk: the backlog passes its bound.
      for (const e of entries(1, 10)) writer.write({ ...e, responseBody: body });
      expect(writer.stats().spoolPending).toBeLessThan(10);
      expect(writer.stats().dropped).toBe(10 - writer.stats().spoolPending);
      expect(log.text()).toContain("the spool file cannot keep up");
      await writer.flush();
      expect(writer.stats().spooled).toBe(10 - writer.stats().dropped);
    });

    it("counts a batch the store does not confirm in time as failed, and writes nothing twice when it committed after all", async () => {
      const { writer, store, stored } = await setup({ writeTimeoutMs: 100 });
      store.fault = "hang";
      const list = entries(1, 5);
      for (const e of list) writer.write(e);
      await until(() => !writer.stats().storeReachable, "the batch timed out");
      await writer.flush();
      expect(writer.stats()).toMatchObject({ queued: 0, spooled: 5 });
      store.fault = "none";
      await until(() => writer.stats().spooled === 0 && writer.stats().storeReachable, "the spool is replayed");
      expect(await stored(list)).toEqual(list);
      expect(writer.stats().written).toBe(5);
    });

    it("replays at start the spool a crash left, a torn last line counted as dropped", async () => {
      const dir = tempDir();
      const spoolFile = join(dir, "journal.spool");
      const list = entries(1, 25);
      writeFileSync(spoolFile, list.map((e) => `${spoolLine(e)}\n`).join("") + spoolLine(entries(99, 1)[0]).slice(0, 40));
      const { writer, log, stored } = await setup({ spoolFile });
      await until(() => writer.stats().written === 25 && !existsSync(spoolFile), "the spool is replayed");
      expect(writer.stats()).toMatchObject({ spooled: 0, dropped: 1 });
      expect(await stored(list)).toEqual(list);
      expect(log.text()).toContain("torn write");
    });

    it("writes new entries behind a spool found at start, not before it", async () => {
      const spoolFile = join(tempDir(), "journal.spool");
      const old = entries(1, 30);
      writeFileSync(spoolFile, old.map((e) => `${spoolLine(e)}\n`).join(""));
      const { writer, store, stored } = await setup({ spoolFile });
      const later = entries(100, 3);
      for (const e of later) writer.write(e);
      await until(() => writer.stats().written === 33, "everything is written");
      const order = [...new Set(store.confirmed.flat().map((e) => e.key))];
      expect(order).toEqual([...old, ...later].map((e) => e.key));
      expect(await stored(later)).toEqual(later);
    });

    it("puts everything in the spool on close while the store is down, for the next start", async () => {
      const { writer, store, spoolFile } = await setup();
      store.fault = "down";
      const list = entries(1, 12);
      for (const e of list) writer.write(e);
      await writer.close(2000);
      expect(spoolLines(spoolFile).map((line) => reviveEntry(line)?.key)).toEqual(list.map((e) => e.key));
      // An entry that comes after close is appended too.
      writer.write(entries(50, 1)[0]);
      expect(spoolLines(spoolFile)).toHaveLength(13);
      store.fault = "none";
      const next = createJournalWriter({ store, queueSize: 100, batchSize: 10, spoolFile, logger: captureLogger().logger });
      try {
        await until(() => next.stats().written === 13, "the next writer replays the spool");
        expect(await store.getJournalEntry(list[11].key)).toEqual(list[11]);
      } finally {
        await next.close(1000);
      }
    });

    it("has every entry in the write-ahead log by the end of the turn it was written in, until the store has it: a process that dies loses none, the next start writes them once", async () => {
      const dir = tempDir();
      const files = { spoolFile: join(dir, "journal.spool"), writeAheadFile: join(dir, "journal.wal") };
      const dead = await setup({ ...files });
      const list = entries(1, 25);
      dead.writer.write(list[0]);
      await dead.writer.flush();
      // The store takes no more: the rest wait in memory, and on disk only in the log.
      dead.store.fault = "hang";
      for (const e of list.slice(1)) dead.writer.write(e);
      await new Promise(setImmediate);
      expect(existsSync(files.spoolFile)).toBe(false);
      expect(WriteAheadLog.read(files.writeAheadFile).map((line) => reviveEntry(line)?.key)).toEqual(expect.arrayContaining(list.slice(1).map((e) => e.key)));

      // The process is gone without a close; the next one, on the same files, has a store that answers.
      const { writer, store, log, stored } = await setup({ ...files });
      await until(() => writer.stats().written >= 24 && writer.stats().spooled === 0, "the next writer writes what the log held");
      expect(await stored(list)).toEqual(list);
      expect(store.confirmed.flat().filter((e) => e.key === list[1].key)).toHaveLength(1);
      expect(log.text()).toContain("write-ahead log of a process that did not stop cleanly");
      expect(WriteAheadLog.read(files.writeAheadFile)).toEqual([]);
      dead.store.fault = "down";
    });

    it("lets go of the write-ahead log as the store confirms: it stays small under load and is gone after close", async () => {
      const dir = tempDir();
      const writeAheadFile = join(dir, "journal.wal");
      const { writer } = await setup({ writeAheadFile, queueSize: 10_000, batchSize: 100 });
      const body = "y".repeat(2000);
      for (let round = 0; round < 10; round++) {
        for (const e of entries(round * 100, 100)) writer.write({ ...e, requestBody: body });
        await writer.flush();
      }
      const bytes = segmentBytes(writeAheadFile);
      // 2 MB were written through it; what the store has is let go of, segment by segment.
      expect(bytes).toBeLessThan(256 * 1024);
      await writer.close(1000);
      expect(segmentFiles(writeAheadFile)).toEqual([]);
    });

    it("drops, counts and logs entries when the spool cannot be written, without their bodies", async () => {
      const dir = tempDir();
      const blocker = join(dir, "not-a-folder");
      writeFileSync(blocker, "");
      const { writer, store, log } = await setup({ queueSize: 5, spoolFile: join(blocker, "journal.spool") });
      store.fault = "down";
      const list = entries(1, 20).map((e) => ({ ...e, requestBody: `{"secret-body":${e.key.length}}` }));
      for (const e of list) writer.write(e);
      await writer.flush();
      const { dropped, queued } = writer.stats();
      expect(dropped).toBeGreaterThan(0);
      expect(dropped + queued).toBe(20);
      expect(queued).toBeLessThanOrEqual(5);
      const drops = log.lines.filter((line) => String(line.msg).startsWith("journal entries dropped"));
      expect(drops.length).toBeGreaterThan(0);
      expect(drops.reduce((sum, line) => sum + (line.dropped as number), 0)).toBe(dropped);
      expect(drops.every((line) => line.level === 50)).toBe(true);
      expect(log.text()).not.toContain("secret-body");
      // What the queue kept is written once the store answers.
      store.fault = "none";
      await until(() => writer.stats().written === queued, "the queue is written");
    });

    it("never throws from write, even for an entry the spool cannot serialize", async () => {
      const { writer, store } = await setup({ queueSize: 1 });
      store.fault = "down";
      const circular = { ...entries(1, 1)[0] } as JournalEntry & { self?: unknown };
      circular.self = circular;
      expect(() => {
        writer.write(entries(2, 1)[0]);
        writer.write(circular);
      }).not.toThrow();
      await writer.flush();
      expect(writer.stats().dropped + writer.stats().spooled + writer.stats().queued).toBe(2);
    });
  });
}
