import { appendFileSync, closeSync, createReadStream, mkdirSync, openSync, readSync, statSync, writeSync } from "node:fs";
import { mkdir, open, unlink, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import { isoTimeOf } from "../call/iso-time.js";
import type { JournalEntry } from "../store/store.js";

const NEWLINE = 0x0a;
const READ_CHUNK_BYTES = 1024 * 1024;

/** An entry's spool line without its bodies, which follow it as they are (`requestChars`, `responseChars`: their lengths). */
type SpoolHead = { [K in Exclude<keyof JournalEntry, "time" | "requestBody" | "responseBody">]: JournalEntry[K] } & {
  /** As Date's own JSON has it. */
  readonly time: string;
  readonly requestChars: number | null;
  readonly responseChars: number | null;
};

/** Separates a line's head from its bodies: JSON.stringify escapes every tab, so the first one is it. */
const TAB = "\t";

/**
 * An entry as one spool line (also the journal's write-ahead line): the entry without its bodies
 * as JSON, a tab, then the request and response bodies as they are, one after the other, their
 * lengths in the head; escaping kilobytes of JSON bodies into JSON strings cost more than the
 * rest of the line. A body with a newline would cut the line: such an entry is its whole JSON.
 */
export function spoolLine(entry: JournalEntry): string {
  const { requestBody, responseBody } = entry;
  if (requestBody?.includes("\n") || responseBody?.includes("\n")) return JSON.stringify(entry);
  const head: SpoolHead = {
    key: entry.key,
    time: isoTimeOf(entry.time.getTime()),
    principal: entry.principal,
    provider: entry.provider,
    protocol: entry.protocol,
    status: entry.status,
    grpcCode: entry.grpcCode,
    upstreamStatus: entry.upstreamStatus,
    durationMs: entry.durationMs,
    promptTokens: entry.promptTokens,
    completionTokens: entry.completionTokens,
    totalTokens: entry.totalTokens,
    error: entry.error,
    requestChars: requestBody === null ? null : requestBody.length,
    responseChars: responseBody === null ? null : responseBody.length,
  };
  return `${JSON.stringify(head)}${TAB}${requestBody ?? ""}${responseBody ?? ""}`;
}

/** A spool line read back, its time revived; undefined when the line is not an entry (a torn write). */
export function reviveEntry(line: string): JournalEntry | undefined {
  const tab = line.indexOf(TAB);
  const parsed = parseObject(tab === -1 ? line : line.slice(0, tab));
  if (parsed === undefined) return undefined;
  let entry = parsed;
  if (tab === -1) {
    // A head without its tab is a line cut short there.
    if ("requestChars" in parsed) return undefined;
  } else {
    const { requestChars, responseChars, ...rest } = parsed;
    const requestLength = lengthOf(requestChars);
    const responseLength = lengthOf(responseChars);
    if (requestLength === undefined || responseLength === undefined) return undefined;
    const bodies = line.slice(tab + 1);
    // A line cut short, or one with more after its bodies, is not an entry.
    if (bodies.length !== requestLength + responseLength) return undefined;
    entry = {
      ...rest,
      requestBody: requestChars === null ? null : bodies.slice(0, requestLength),
      responseBody: responseChars === null ? null : bodies.slice(requestLength),
    };
  }
  const time = typeof entry.time === "string" ? new Date(entry.time) : undefined;
  const valid =
    typeof entry.key === "string" && time !== undefined && !Number.isNaN(time.getTime()) && typeof entry.principal === "string" &&
    typeof entry.protocol === "string" && typeof entry.status === "number" && typeof entry.grpcCode === "number" && typeof entry.durationMs === "number";
  return valid ? ({ ...entry, time } as unknown as JournalEntry) : undefined;
}

/** A body's length as a head gives it: a count of characters, or null (no body) as 0; undefined when it is neither. */
function lengthOf(chars: unknown): number | undefined {
  if (chars === null) return 0;
  return typeof chars === "number" && Number.isInteger(chars) && chars >= 0 ? chars : undefined;
}

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(text);
    return typeof parsed === "object" && parsed !== null && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Lines read from the spool and the offset just past the last of them. */
export interface SpoolRead {
  /** Non-empty lines, in file order. */
  readonly lines: string[];
  readonly end: number;
}

/**
 * The append-only file that holds journal entries the store could not take yet, one JSON line
 * each. Only whole appends count: `size` grows once an append has been written completely, and
 * reads stop there, so an append under way is never read half. Appends are not fsynced one by
 * one (a process crash loses nothing written; an OS crash may lose what `sync` did not cover).
 */
export class SpoolFile {
  /** Bytes of whole appends: what may be read. */
  size: number;
  #handle: Promise<FileHandle> | undefined;
  #removing: Promise<void> | undefined;
  #dirty = false;
  /** A failed append may have left a torn line: the next one starts on a line of its own. */
  #needsNewline = false;

  /** Opens nothing yet; `size` is what a previous process left (see recover). */
  constructor(
    readonly path: string,
    size = 0,
  ) {
    this.size = size;
  }

  /**
   * The size of the spool a previous process left, 0 when there is none. A last line a crash
   * cut short is closed with a newline, so that it stays one bad line and the next append
   * starts a line of its own. Synchronous: it runs once, when the writer is built.
   */
  static recover(path: string): number {
    let size: number;
    try {
      size = statSync(path).size;
    } catch {
      return 0;
    }
    if (size === 0) return 0;
    const fd = openSync(path, "r+");
    try {
      const last = Buffer.alloc(1);
      readSync(fd, last, 0, 1, size - 1);
      if (last[0] !== NEWLINE) size += writeSync(fd, "\n", size);
    } finally {
      closeSync(fd);
    }
    return size;
  }

  /** Appends whole lines (each ending in a newline); a failure takes back what it wrote, if it can, and rejects. */
  async append(text: string): Promise<void> {
    const handle = await this.#open();
    const buffer = Buffer.from(this.#needsNewline ? `\n${text}` : text);
    try {
      for (let written = 0; written < buffer.length; ) written += (await handle.write(buffer, written)).bytesWritten;
    } catch (error) {
      try {
        await handle.truncate(this.size);
      } catch {
        this.#needsNewline = true;
        this.size = await handle.stat().then((stat) => stat.size, () => this.size);
      }
      throw error;
    }
    this.size += buffer.length;
    this.#dirty = true;
    this.#needsNewline = false;
  }

  /** Reads whole lines from `offset`, up to `maxLines` or about `maxChars` characters, streaming in chunks. */
  async read(offset: number, maxLines: number, maxChars: number): Promise<SpoolRead> {
    const handle = await this.#open();
    const chunk = Buffer.allocUnsafe(READ_CHUNK_BYTES);
    const lines: string[] = [];
    let chars = 0;
    let end = offset;
    let carry: Buffer[] = [];
    let position = offset;
    const full = () => lines.length >= maxLines || chars >= maxChars;
    while (position < this.size && !full()) {
      const { bytesRead } = await handle.read(chunk, 0, Math.min(READ_CHUNK_BYTES, this.size - position), position);
      if (bytesRead === 0) break;
      const base = position;
      position += bytesRead;
      for (let start = 0; start < bytesRead && !full(); ) {
        const newline = chunk.indexOf(NEWLINE, start);
        if (newline === -1 || newline >= bytesRead) {
          carry.push(Buffer.from(chunk.subarray(start, bytesRead)));
          break;
        }
        const piece = chunk.subarray(start, newline);
        const line = (carry.length > 0 ? Buffer.concat([...carry, piece]) : piece).toString("utf8");
        carry = [];
        start = newline + 1;
        end = base + start;
        if (line.length === 0) continue;
        lines.push(line);
        chars += line.length;
      }
    }
    return { lines, end };
  }

  /** The non-empty lines among the first `bytes` bytes, read as a stream. */
  async countLines(bytes: number): Promise<number> {
    if (bytes === 0) return 0;
    let count = 0;
    let previous = NEWLINE;
    for await (const chunk of createReadStream(this.path, { start: 0, end: bytes - 1 }) as AsyncIterable<Buffer>) {
      for (let at = chunk.indexOf(NEWLINE); at !== -1; at = chunk.indexOf(NEWLINE, at + 1)) {
        const before = at === 0 ? previous : chunk[at - 1];
        if (before !== NEWLINE) count++;
      }
      previous = chunk[chunk.length - 1];
    }
    return count;
  }

  /** Forces what was appended to the disk. */
  async sync(): Promise<void> {
    if (!this.#dirty || this.#handle === undefined) return;
    this.#dirty = false;
    await (await this.#handle).datasync();
  }

  /**
   * Empties and removes the file once every entry in it is in the store; the next append
   * creates it again. It is emptied first, so that a removal that fails leaves nothing to replay twice.
   */
  remove(): Promise<void> {
    const handle = this.#handle;
    this.#handle = undefined;
    this.size = 0;
    this.#dirty = false;
    this.#needsNewline = false;
    this.#removing = (async () => {
      const opened = await handle?.catch(() => undefined);
      let emptied = false;
      try {
        await opened?.truncate(0);
        emptied = opened !== undefined;
      } catch {
        // removed below, or reported when it cannot be
      } finally {
        await opened?.close().catch(() => undefined);
      }
      await unlink(this.path).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== "ENOENT" && !emptied) throw error;
      });
    })();
    return this.#removing;
  }

  /** Syncs and closes the file, waiting for the operations under way. */
  async close(): Promise<void> {
    const handle = this.#handle;
    if (handle === undefined) return;
    try {
      await this.sync();
    } finally {
      this.#handle = undefined;
      await (await handle).close();
    }
  }

  /**
   * Appends and syncs at once, outside the asynchronous appends: at start (what a dead process's
   * write-ahead log held), or after close (an entry that arrives when nothing runs any more).
   */
  appendSync(text: string): void {
    mkdirSync(dirname(this.path), { recursive: true });
    const written = this.#needsNewline ? `\n${text}` : text;
    appendFileSync(this.path, written, { flush: true });
    this.size += Buffer.byteLength(written);
    this.#needsNewline = false;
  }

  #open(): Promise<FileHandle> {
    if (this.#handle === undefined) {
      const opening = (async () => {
        await this.#removing?.catch(() => undefined);
        await mkdir(dirname(this.path), { recursive: true });
        return open(this.path, "a+");
      })();
      this.#handle = opening;
      // A failed open is tried again by the next call.
      opening.catch(() => {
        if (this.#handle === opening) this.#handle = undefined;
      });
    }
    return this.#handle;
  }
}
