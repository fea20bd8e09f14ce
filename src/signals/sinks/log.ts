import { closeSync, mkdirSync, openSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { appendInTurn, flushAppends, type AppendDone } from "../../durable/turn-appends.js";
import { eventJson, eventJsonWithoutBody, type SignalEvent, type SignalSink } from "../sink.js";
import { abortedError, untilAborted } from "./abort.js";

export interface LogSinkOptions {
  /** A file to append the lines to, relative to the working directory (its folder is created). Default: standard output. */
  path?: string;
  /** Asked of each event as it is delivered whether it keeps its request and response bodies (`data.body`). Default: always. */
  keepBodies?: (event: SignalEvent) => boolean;
}

/**
 * The `log` sink: one JSON line per event (`eventJson`, or `eventJsonWithoutBody` where
 * `keepBodies` says no), written to standard output or appended to a file, apart from the
 * gateway's own pino logs. A batch is one write; a delivery resolves once the write is handed
 * to the operating system, so that a slow reader holds the dispatcher back instead of filling memory.
 * To a file, a call's events are appended as the call ends (`deliverNow`), written with the
 * turn's other appends to it in one write (`appendInTurn`), in place of the dispatcher's queue
 * and write-ahead log; a failed append goes the queued way.
 */
export function createLogSink(options: LogSinkOptions = {}): SignalSink {
  const { path } = options;
  if (path !== undefined && (typeof path !== "string" || path === "")) throw new TypeError("path must be a non-empty string");
  return new LogSink(path === undefined ? stdoutWriter() : fileWriter(resolve(path)), options.keepBodies ?? (() => true));
}

interface Writer {
  write(text: string): Promise<void>;
  /** Appends by the end of this turn, then tells `done`; only a file's writer has it. */
  writeNow?(text: string, done: AppendDone): void;
  close(): Promise<void>;
}

/** Writes one after the other, so that batches never interleave and a close waits for the last. */
class LogSink implements SignalSink {
  readonly name = "log";
  readonly #writer: Writer;
  #tail: Promise<void> = Promise.resolve();
  #closing: Promise<void> | undefined;

  /** Set on a sink that writes to a file: the dispatcher then hands it each call's events at once. */
  readonly deliverNow?: (events: readonly SignalEvent[], done: AppendDone) => void;

  constructor(
    writer: Writer,
    readonly keepBodies: (event: SignalEvent) => boolean,
  ) {
    this.#writer = writer;
    const { writeNow } = writer;
    if (writeNow !== undefined) {
      this.deliverNow = (events, done) => {
        if (this.#closing) throw new Error("the log sink is closed");
        writeNow(this.#text(events), done);
      };
    }
  }

  #text(events: readonly SignalEvent[]): string {
    let text = "";
    for (const event of events) text += `${this.keepBodies(event) ? eventJson(event) : eventJsonWithoutBody(event)}\n`;
    return text;
  }

  deliver(events: readonly SignalEvent[], signal: AbortSignal): Promise<void> {
    if (this.#closing) return Promise.reject(new Error("the log sink is closed"));
    if (signal.aborted) return Promise.reject(abortedError(signal, "the log delivery"));
    let text: string;
    try {
      text = this.#text(events);
    } catch (error) {
      return Promise.reject(error);
    }
    // A delivery aborted while an earlier write was still going writes nothing.
    const written = this.#tail.then(() => (signal.aborted ? Promise.reject(abortedError(signal, "the log delivery")) : this.#writer.write(text)));
    this.#tail = written.catch(() => {});
    return untilAborted(written, signal, "the log delivery");
  }

  close(): Promise<void> {
    this.#closing ??= this.#tail.then(() => this.#writer.close());
    return this.#closing;
  }
}

function stdoutWriter(): Writer {
  return {
    write: (text) =>
      new Promise<void>((resolve, reject) => {
        process.stdout.write(text, (error) => (error ? reject(new Error("the log sink could not write to standard output", { cause: error })) : resolve()));
      }),
    // Standard output belongs to the process: it is left open.
    close: () => Promise.resolve(),
  };
}

/**
 * Opened on the first write, in append mode, and kept open; a failed open is tried again on the
 * next write. Both ways append through the one descriptor with the turn's other appends to it
 * (`appendInTurn`): a local file's append waits on nothing, and each lands whole at the end of
 * the file, in the order given.
 */
function fileWriter(path: string): Writer {
  let fd: number | undefined;
  const writeNow = (text: string, done: AppendDone) => {
    try {
      if (fd === undefined) {
        mkdirSync(dirname(path), { recursive: true });
        fd = openSync(path, "a");
      }
    } catch (error) {
      throw new Error(`the log sink could not open ${path}`, { cause: error });
    }
    appendInTurn(fd, text, (error) => done(error === undefined ? undefined : new Error(`the log sink could not write to ${path}`, { cause: error })));
  };
  return {
    write: (text) => new Promise<void>((resolve, reject) => writeNow(text, (error) => (error === undefined ? resolve() : reject(error)))),
    writeNow,
    async close() {
      if (fd !== undefined) {
        flushAppends(fd);
        closeSync(fd);
      }
      fd = undefined;
    },
  };
}
