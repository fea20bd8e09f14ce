import { writeSync } from "node:fs";

/** Told once a turn's appends to its file were written, or of the error that stopped them. */
export type AppendDone = (error?: unknown) => void;

interface PendingFile {
  readonly texts: string[];
  readonly dones: AppendDone[];
}

const pending = new Map<number, PendingFile>();
let waiting: Array<() => void> = [];
let scheduled = false;

/**
 * Appends `text` to the open file `fd` at the end of this turn of the event loop, with every
 * other append made to it in the turn, in one write; then tells `done`. The calls that end in
 * one turn (under load, several) so share one system call per file instead of one each, and the
 * answers that wait for them (`afterAppends`) go out once they are written. An owner closing
 * its file first writes what waits for it with `flushAppends`.
 */
export function appendInTurn(fd: number, text: string, done: AppendDone): void {
  let file = pending.get(fd);
  if (file === undefined) pending.set(fd, (file = { texts: [], dones: [] }));
  file.texts.push(text);
  // One owner appends the same callback call after call: told once per turn.
  if (file.dones.at(-1) !== done) file.dones.push(done);
  if (!scheduled) {
    scheduled = true;
    setImmediate(flushTurn);
  }
}

/**
 * Runs `then` once this turn's appends are written, and says so; false when none waits (then
 * is not kept). A response whose call appended its journal entry or its signals ends this way,
 * so that its last bytes never leave before them.
 */
export function afterAppends(then: () => void): boolean {
  if (!scheduled) return false;
  waiting.push(then);
  return true;
}

/** Writes at once what this turn appended to `fd`, before its owner closes or replaces it. */
export function flushAppends(fd: number): void {
  const file = pending.get(fd);
  if (file === undefined) return;
  pending.delete(fd);
  write(fd, file);
}

function flushTurn(): void {
  scheduled = false;
  for (const [fd, file] of pending) write(fd, file);
  pending.clear();
  const then = waiting;
  waiting = [];
  for (const run of then) run();
}

function write(fd: number, file: PendingFile): void {
  let failure: unknown;
  try {
    const bytes = Buffer.from(file.texts.length === 1 ? file.texts[0] : file.texts.join(""));
    for (let written = 0; written < bytes.length; ) written += writeSync(fd, bytes, written);
  } catch (error) {
    failure = error ?? new Error("the append failed");
  }
  for (const done of file.dones) done(failure);
}
