import { Redis } from "ioredis";
import { eventJson, type SignalEvent, type SignalSink, type SinkContext } from "../sink.js";
import { abortedError, untilAborted } from "./abort.js";

export interface RedisSinkOptions {
  /** A redis:// or rediss:// URL. Required. */
  url: string;
  /** The stream's key. Required. */
  stream: string;
  /** XADD's approximate MAXLEN: Redis trims the stream to about this many entries. Default 100,000. */
  maxLen?: number;
  /** Bounds connecting and each batch's commands. Default 5 s. */
  timeoutMs?: number;
}

/**
 * The `redis` sink (SPEC section 6): each event is one stream entry, added by
 * `XADD <stream> MAXLEN ~ <maxLen> * signal <signal> id <id> event <JSON>`, one pipeline per
 * batch. `event` holds the whole event; `signal` and `id` repeat two of its fields, so that a
 * reader can filter or de-duplicate without parsing it.
 */
export function createRedisSink(options: RedisSinkOptions, context?: SinkContext): SignalSink {
  const { url, stream, maxLen = 100_000, timeoutMs = 5000 } = options;
  if (typeof url !== "string" || !/^rediss?:\/\/\S+$/.test(url)) throw new TypeError("url must be a redis:// or rediss:// URL");
  if (typeof stream !== "string" || stream === "") throw new TypeError("stream must be a non-empty string");
  for (const [name, value] of [["maxLen", maxLen], ["timeoutMs", timeoutMs]] as const) {
    if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`);
  }
  return new RedisSink(url, stream, maxLen, timeoutMs, context);
}

/**
 * Connects on demand: on the first delivery, and again on the first one after the connection
 * was lost. Nothing waits in ioredis while Redis is down (no offline queue, no background
 * reconnection, no resending), so a delivery then rejects at once, or within `timeoutMs` when
 * Redis does not answer.
 */
class RedisSink implements SignalSink {
  readonly name = "redis";
  readonly #redis: Redis;
  readonly #stream: string;
  readonly #maxLen: number;
  #connecting: Promise<void> | undefined;
  #lastError: Error | undefined;
  #closing: Promise<void> | undefined;

  constructor(url: string, stream: string, maxLen: number, timeoutMs: number, context: SinkContext | undefined) {
    this.#stream = stream;
    this.#maxLen = maxLen;
    this.#redis = new Redis(url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      retryStrategy: () => null,
      connectTimeout: timeoutMs,
      commandTimeout: timeoutMs,
      connectionName: "passthrough-signals",
    });
    // A failure is reported by the delivery that met it (the dispatcher logs those); here it is only kept for that report.
    this.#redis.on("error", (error: Error) => {
      this.#lastError = error;
      context?.logger.debug({ sink: this.name, error: error.message }, "signals: Redis connection error");
    });
  }

  async deliver(events: readonly SignalEvent[], signal: AbortSignal): Promise<void> {
    if (this.#closing) throw new Error("the Redis sink is closed");
    if (signal.aborted) throw abortedError(signal, "the Redis delivery");
    await untilAborted(this.#connect(), signal, "the Redis delivery");
    const pipeline = this.#redis.pipeline();
    for (const event of events) {
      pipeline.xadd(this.#stream, "MAXLEN", "~", this.#maxLen, "*", "signal", event.signal, "id", event.id, "event", eventJson(event));
    }
    let results: Array<[Error | null, unknown]> | null;
    try {
      results = await untilAborted(pipeline.exec(), signal, "the Redis delivery");
    } catch (error) {
      if (signal.aborted) throw error;
      throw new Error(`Redis did not take the batch: ${(error as Error).message}`, { cause: error });
    }
    const failed = results?.find(([error]) => error !== null)?.[0];
    if (failed) throw new Error(`Redis did not take the batch: ${failed.message}`, { cause: failed });
  }

  /**
   * Ends the connection at once, and a connect under way with it: close comes after the last
   * delivery, so nothing is left to send, and waiting (for QUIT's answer, or the connect) could
   * hold shutdown for `timeoutMs` past its deadline when Redis does not answer.
   */
  close(): Promise<void> {
    this.#closing ??= Promise.resolve().then(() => {
      // Ended already (never connected, or the connection was lost): ioredis would only start a timer.
      if (this.#redis.status !== "end") this.#redis.disconnect();
    });
    return this.#closing;
  }

  #connect(): Promise<void> {
    const status = this.#redis.status;
    if (status === "ready") return Promise.resolve();
    if (this.#connecting) return this.#connecting;
    if (status !== "wait" && status !== "end" && status !== "close") return Promise.reject(new Error(`the Redis sink is not connected (${status})`));
    this.#lastError = undefined;
    const connecting = this.#redis.connect().then(
      () => {
        this.#connecting = undefined;
      },
      (error: Error) => {
        this.#connecting = undefined;
        // ioredis rejects with "Connection is closed."; the reason (ECONNREFUSED, a timeout) came as an error event.
        const reason = this.#lastError ?? error;
        throw new Error(`the Redis sink could not connect: ${reason.message}`, { cause: reason });
      },
    );
    this.#connecting = connecting;
    return connecting;
  }
}
