import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { createLogger, type Logger } from "../../src/logging/logger.js";
import { storeUnavailable, type JournalEntry, type Store } from "../../src/store/store.js";

/** A logger whose JSON lines are kept, parsed. */
export function captureLogger(): { logger: Logger; lines: Array<Record<string, unknown>>; text: () => string } {
  const raw: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      raw.push(...String(chunk).split("\n").filter(Boolean));
      done();
    },
  });
  const logger = createLogger({ level: "debug", destination });
  return {
    logger,
    get lines() {
      return raw.map((line) => JSON.parse(line) as Record<string, unknown>);
    },
    text: () => raw.join("\n"),
  };
}

export const tempDir = (prefix = "passthrough-journal-") => mkdtempSync(join(tmpdir(), prefix));

/** Resolves once `condition` holds, polling; rejects with `what` after `timeoutMs`. */
export async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export type StoreFault = "none" | "down" | "hang";

/**
 * A real store whose journal writes can be made to fail UNAVAILABLE (`down`) or never answer
 * (`hang`, released by `fault = "none"`), for the cases no real server can be made to show on
 * cue. Every batch the store confirmed is kept, in order.
 */
export function faultyStore(store: Store): Store & { fault: StoreFault; confirmed: JournalEntry[][]; attempts: number } {
  let fault: StoreFault = "none";
  const hung: Array<() => void> = [];
  const confirmed: JournalEntry[][] = [];
  let attempts = 0;
  return {
    ...store,
    get fault() {
      return fault;
    },
    set fault(value: StoreFault) {
      fault = value;
      if (value !== "hang") for (const release of hung.splice(0)) release();
    },
    confirmed,
    get attempts() {
      return attempts;
    },
    async writeJournal(entries) {
      attempts++;
      if (fault === "down") throw storeUnavailable("journal", new Error("the test took the store down"));
      if (fault === "hang") await new Promise<void>((resolve) => hung.push(resolve));
      const written = await store.writeJournal(entries);
      confirmed.push([...entries]);
      return written;
    },
  };
}
