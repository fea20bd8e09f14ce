import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createJournalWriter } from "../../src/journal/writer.js";
import { openStore } from "../../src/store/open.js";
import { captureLogger, tempDir } from "./support.js";
import { writerCases } from "./writer-cases.js";

// The journal writer over SQLite: a database file of its own per case.
const newStore = () => openStore(`sqlite:${join(tempDir("passthrough-journal-db-"), "journal.db")}`);
writerCases(newStore);

describe("the journal writer's options", () => {
  const base = { store: undefined as never, queueSize: 10, batchSize: 5, spoolFile: "/tmp/x.spool", logger: captureLogger().logger };
  it.each([
    [{ spoolFile: "data/journal.spool" }, "spoolFile must be an absolute path"],
    [{ queueSize: 0 }, "queueSize must be a positive integer"],
    [{ batchSize: 2.5 }, "batchSize must be a positive integer"],
    [{ maxQueueBytes: -1 }, "maxQueueBytes must be a positive number"],
    [{ writeTimeoutMs: Number.POSITIVE_INFINITY }, "writeTimeoutMs must be a positive number"],
  ])("refuses %o", (options, message) => {
    expect(() => createJournalWriter({ ...base, ...options })).toThrow(message);
  });
});
