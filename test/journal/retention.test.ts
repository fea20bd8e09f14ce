import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { startJournalRetention } from "../../src/journal/retention.js";
import { openStore } from "../../src/store/open.js";
import { entry, hex } from "../store/contract-journal.js";
import { captureLogger, tempDir, until } from "./support.js";

const DAY_MS = 24 * 60 * 60 * 1000;
const newStore = () => openStore(`sqlite:${join(tempDir("passthrough-retention-"), "journal.db")}`);

describe("journal retention", () => {
  it("deletes entries older than retentionDays shortly after start, and again every interval", async () => {
    const store = await newStore();
    const now = Date.UTC(2030, 5, 1);
    let clock = now;
    await store.writeJournal([entry(1, { time: new Date(now - 10 * DAY_MS) }), entry(2, { time: new Date(now - 2 * DAY_MS) }), entry(3, { time: new Date(now) })]);
    const log = captureLogger();
    const retention = startJournalRetention({ store, retentionDays: 7, logger: log.logger, firstRunMs: 10, intervalMs: 50, now: () => clock });
    try {
      await until(async () => (await store.getJournalEntry(hex(1))) === undefined, "the first run deleted the old entry");
      expect(await store.getJournalEntry(hex(2))).toBeDefined();
      expect(log.text()).toContain("journal retention deleted old entries");
      clock = now + 6 * DAY_MS;
      await until(async () => (await store.getJournalEntry(hex(2))) === undefined, "a later run deleted the next one");
      expect(await store.getJournalEntry(hex(3))).toBeDefined();
    } finally {
      retention.stop();
      await store.close();
    }
  });

  it("logs a failure and tries again at the next run", async () => {
    const store = await newStore();
    await store.close();
    const log = captureLogger();
    const retention = startJournalRetention({ store, retentionDays: 1, logger: log.logger, firstRunMs: 1, intervalMs: 20 });
    try {
      await until(() => log.lines.filter((line) => line.msg === "journal retention failed; the next run tries again").length >= 2, "two runs failed");
      expect(log.lines.find((line) => String(line.msg).startsWith("journal retention failed"))).toMatchObject({ level: 50, error: "[unavailable] the journal is unavailable" });
    } finally {
      retention.stop();
    }
  });

  it("runs no more once stopped", async () => {
    const store = await newStore();
    await store.writeJournal([entry(1, { time: new Date(Date.now() - 10 * DAY_MS) })]);
    const retention = startJournalRetention({ store, retentionDays: 1, logger: captureLogger().logger, firstRunMs: 30, intervalMs: 30 });
    retention.stop();
    await new Promise((resolve) => setTimeout(resolve, 120));
    expect(await store.getJournalEntry(hex(1))).toBeDefined();
    await store.close();
  });

  it("refuses a retention that is not a positive number of days", () => {
    expect(() => startJournalRetention({ store: undefined as never, retentionDays: 0, logger: captureLogger().logger })).toThrow("retentionDays");
  });
});
