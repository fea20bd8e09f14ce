import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, unlinkSync } from "node:fs";
import { unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { messageOf, type Logger } from "../logging/logger.js";
import { appendInTurn, flushAppends } from "./turn-appends.js";

/** A segment is closed past this size and deleted once all of it is released. */
const SEGMENT_BYTES = 4 * 1024 * 1024;
/** A wholly released segment is deleted and started afresh past this size, so an idle log stays small. */
const RESET_BYTES = 64 * 1024;

/**
 * What a call's answer must not outrun: lines written to a file by the end of the turn in which
 * they were appended (`appendInTurn`: one write for the turn's lines, before any answer that
 * waits for them), so that they outlive the process (SIGKILL, an uncaught error; the kernel
 * keeps what was written, but nothing is fsynced, so an OS crash may lose the last lines) until
 * they are safe elsewhere, in the store or delivered. Each line carries a rising sequence number;
 * `release(seq)` says every line up to it is safe, and segments wholly at or below it are
 * deleted. The files are `<base>.<n>`; a process that died leaves them, and the next one with
 * the same base takes them over with `adoptLeftovers`.
 * A disk that fails is logged (once per outage) and never thrown: the lines then live in memory only.
 */
export class WriteAheadLog {
  #fd: number | undefined;
  #segment: number;
  #size = 0;
  #lastSeq = 0;
  #released = 0;
  #closed: Array<{ path: string; lastSeq: number }> = [];
  #failing = false;
  /** Segments a previous process left, found when the log was built. */
  #leftovers: string[];

  /** Appends start after the highest segment number found, so a leftover segment is never appended to. `name` says whose log it is in log lines. */
  constructor(
    readonly base: string,
    readonly name: string,
    readonly logger: Logger,
  ) {
    const found = segmentsOf(base);
    this.#leftovers = found.map((segment) => segment.path);
    this.#segment = Math.max(0, ...found.map((segment) => segment.n));
  }

  /** The non-empty lines every segment of `base` holds, oldest first; a line a crash cut short is among them, for the reader to refuse. */
  static read(base: string): string[] {
    return readLines(segmentsOf(base).map((segment) => segment.path));
  }

  /**
   * Hands `take` the lines a previous process left (it died), oldest first, then deletes their
   * files. When `take` throws, or the files cannot be read or deleted, that is logged and the
   * files stay: the next start takes them over again (readers skip what they already have).
   */
  adoptLeftovers(take: (lines: string[]) => void): void {
    const files = this.#leftovers;
    this.#leftovers = [];
    if (files.length === 0) return;
    this.#guard("taken over from the last process; the next start tries again", () => {
      take(readLines(files));
      for (const file of files) unlinkSync(file);
    });
  }

  /** Appends one line (no newline in it): written by the end of this turn. */
  append(line: string, seq: number): void {
    try {
      if (this.#fd === undefined) {
        this.#segment++;
        mkdirSync(dirname(this.base), { recursive: true });
        this.#fd = openSync(this.#path(), "a");
        this.#size = 0;
      }
      const text = `${line}\n`;
      appendInTurn(this.#fd, text, this.#written);
      // Characters, not bytes: a segment's bound needs no more precision than that.
      this.#size += text.length;
      this.#lastSeq = seq;
      if (this.#size >= SEGMENT_BYTES) this.#rotate(false);
    } catch (error) {
      this.#written(error);
    }
  }

  /** Told after each turn's write (and of an open or rotation that failed): logs an outage once, and its end. */
  readonly #written = (error?: unknown): void => {
    if (error === undefined) {
      if (this.#failing) this.logger.info({ file: this.base }, `${this.name} write-ahead log writable again`);
      this.#failing = false;
      return;
    }
    if (!this.#failing) this.logger.error({ file: this.base, error: messageOf(error) }, `${this.name} write-ahead log could not be written: what waits in memory dies with the process`);
    this.#failing = true;
  };

  /** Every line up to `seq` is safe elsewhere. */
  release(seq: number): void {
    if (seq <= this.#released) return;
    this.#released = seq;
    while (this.#closed.length > 0 && this.#closed[0].lastSeq <= seq) {
      const { path } = this.#closed.shift()!;
      unlink(path).catch(() => undefined);
    }
    if (this.#fd !== undefined && this.#lastSeq <= seq && this.#size >= RESET_BYTES) this.#guard("trimmed", () => this.#rotate(true));
  }

  /** Closes the file; deletes every segment when everything appended was released, else keeps them for the next start. */
  close(): void {
    this.#guard("closed; the next start replays it", () => {
      if (this.#fd !== undefined) this.#rotate(this.#lastSeq <= this.#released);
      if (this.#closed.every((segment) => segment.lastSeq <= this.#released)) {
        for (const { path } of this.#closed.splice(0)) unlinkSync(path);
      }
    });
  }

  #guard(what: string, operation: () => void): void {
    try {
      operation();
    } catch (error) {
      this.logger.error({ file: this.base, error: messageOf(error) }, `${this.name} write-ahead log could not be ${what}`);
    }
  }

  #rotate(released: boolean): void {
    flushAppends(this.#fd!);
    closeSync(this.#fd!);
    this.#fd = undefined;
    if (released) unlinkSync(this.#path());
    else this.#closed.push({ path: this.#path(), lastSeq: this.#lastSeq });
  }

  #path(): string {
    return `${this.base}.${this.#segment}`;
  }
}

function readLines(files: readonly string[]): string[] {
  const lines: string[] = [];
  for (const file of files) {
    for (const line of readFileSync(file, "utf8").split("\n")) if (line.length > 0) lines.push(line);
  }
  return lines;
}

function segmentsOf(base: string): Array<{ path: string; n: number }> {
  const prefix = `${basename(base)}.`;
  let names: string[];
  try {
    names = readdirSync(dirname(base));
  } catch {
    return [];
  }
  return names
    .filter((name) => name.startsWith(prefix) && /^\d+$/.test(name.slice(prefix.length)))
    .map((name) => ({ path: join(dirname(base), name), n: Number(name.slice(prefix.length)) }))
    .sort((a, b) => a.n - b.n);
}
