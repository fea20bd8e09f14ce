import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { SignalEvent, SignalSink, SinkContext, SinkFactory } from "../sink.js";
import { messageOf } from "../../logging/logger.js";
import { abortedError, untilAborted } from "./abort.js";

export interface ModuleSinkOptions {
  /** The module's path, relative to the working directory. Required. */
  path: string;
  /** Passed to the module's factory as they are. Default `{}`. */
  options?: Record<string, unknown>;
}

/**
 * A custom sink (`{ type: module, path }`): imports the module, calls its factory (the default
 * export, or `createSink`) with the options and the context, and checks that what it got is a
 * sink. Every failure names the path. The sink is wrapped so that its faults stay its own.
 */
export async function loadModuleSink({ path, options = {} }: ModuleSinkOptions, context: SinkContext): Promise<SignalSink> {
  if (typeof path !== "string" || path === "") throw new TypeError("path must be a non-empty string");
  let loaded: Record<string, unknown>;
  try {
    loaded = (await import(pathToFileURL(resolve(process.cwd(), path)).href)) as Record<string, unknown>;
  } catch (error) {
    throw new Error(`signal sink module ${path} could not be loaded: ${messageOf(error)}`, { cause: error });
  }
  const factory = findFactory(loaded);
  if (factory === undefined) throw new TypeError(`signal sink module ${path} exports no factory: a default export or createSink`);
  let sink: unknown;
  try {
    sink = await factory(options, context);
  } catch (error) {
    throw new Error(`signal sink module ${path} failed to create its sink: ${messageOf(error)}`, { cause: error });
  }
  if (!isSink(sink)) throw new TypeError(`signal sink module ${path}: its factory must return an object with deliver and close functions`);
  return new ContainedSink(sink, path, context);
}

/** The default export, `createSink`, or (a CommonJS module) the default export's `createSink`. */
function findFactory(loaded: Record<string, unknown>): SinkFactory | undefined {
  const candidates = [loaded.default, loaded.createSink, (loaded.default as { createSink?: unknown } | undefined)?.createSink];
  return candidates.find((candidate): candidate is SinkFactory => typeof candidate === "function");
}

function isSink(value: unknown): value is Pick<SignalSink, "deliver" | "close"> & { name?: unknown } {
  const sink = value as { deliver?: unknown; close?: unknown } | null;
  return typeof sink === "object" && sink !== null && typeof sink.deliver === "function" && typeof sink.close === "function";
}

/**
 * A module's sink, held to the contract: a deliver that throws, returns no promise or ignores
 * the abort signal becomes a rejection (the abort one as soon as the signal aborts); a close
 * that fails is logged, and runs once.
 */
class ContainedSink implements SignalSink {
  readonly name: string;
  readonly #sink: Pick<SignalSink, "deliver" | "close">;
  readonly #path: string;
  readonly #context: SinkContext;
  #closing: Promise<void> | undefined;

  constructor(sink: Pick<SignalSink, "deliver" | "close"> & { name?: unknown }, path: string, context: SinkContext) {
    this.name = typeof sink.name === "string" && sink.name !== "" ? sink.name : "module";
    this.#sink = sink;
    this.#path = path;
    this.#context = context;
  }

  deliver(events: readonly SignalEvent[], signal: AbortSignal): Promise<void> {
    const what = `the delivery to signal sink module ${this.#path}`;
    if (this.#closing) return Promise.reject(new Error(`signal sink module ${this.#path} is closed`));
    if (signal.aborted) return Promise.reject(abortedError(signal, what));
    let result: unknown;
    try {
      result = this.#sink.deliver(events, signal);
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(`signal sink module ${this.#path}: deliver threw ${messageOf(error)}`, { cause: error }));
    }
    if (typeof (result as PromiseLike<unknown> | null)?.then !== "function") {
      return Promise.reject(new TypeError(`signal sink module ${this.#path}: deliver must return a promise`));
    }
    return untilAborted(Promise.resolve(result as PromiseLike<unknown>).then(() => undefined), signal, what);
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      try {
        await this.#sink.close();
      } catch (error) {
        this.#context.logger.warn({ sink: this.name, path: this.#path, error: messageOf(error) }, "signals: a sink module failed to close");
      }
    })();
    return this.#closing;
  }
}
