import { WriteAheadLog } from "../durable/write-ahead-log.js";
import { messageOf, type Logger } from "../logging/logger.js";
import { BODY_JSON, eventsJson, type SignalEvent, type SignalSink } from "./sink.js";

export interface DispatcherOptions {
  sinks: readonly SignalSink[];
  /** Events one sink may hold; past it new events are dropped for that sink and counted. */
  queueSize: number;
  /** Bytes (as weighed by the emitter) one sink may hold, so that large bodies cannot fill memory. Default 64 MiB. */
  maxQueueBytes?: number;
  /** Most events in one delivery. */
  batchSize: number;
  /** How long a batch that is not full waits for more events before it is delivered (not at shutdown). Default 0: the next turn. */
  lingerMs?: number;
  logger: Logger;
  /** One delivery's bound: past it the delivery is aborted and retried. Default 30 s. */
  deliveryTimeoutMs?: number;
  /** First retry's delay; doubled each failure up to `maxRetryMs`, each with jitter. Defaults 100 ms and 30 s. */
  retryMs?: number;
  maxRetryMs?: number;
  /**
   * Absolute base path of the write-ahead log (`<base>.<n>` files) that `commit` writes to and
   * that keeps a call's events until every sink has taken them, so that a process that dies
   * (SIGKILL) loses none: the next start delivers what it left. Absent: none is kept.
   */
  writeAheadFile?: string;
}

/** One sink's figures, for metrics and readiness. */
export interface SinkStats {
  readonly name: string;
  /** `idle` before its first delivery, `connected` after a success, `retrying` after a failure. */
  readonly state: "idle" | "connected" | "retrying";
  readonly queued: number;
  readonly delivered: number;
  readonly retries: number;
  readonly dropped: number;
}

export interface SignalDispatcher {
  /** Queues the event for every sink; never throws, never waits. `weight`: its approximate size in bytes, by default its body text's length (`weightOf`). */
  emit(event: SignalEvent, weight?: number): void;
  /**
   * Writes a call's events, already emitted, to the write-ahead log before returning, so that
   * they are delivered even if the process dies before the sinks took them. Never throws.
   */
  commit(events: readonly SignalEvent[]): void;
  stats(): SinkStats[];
  /**
   * Delivers what the sinks hold, for at most `timeoutMs`, then drops (and counts) the rest and
   * closes the sinks; with a write-ahead log, what was dropped stays in it for the next start.
   */
  close(timeoutMs: number): Promise<void>;
}

const DEFAULT_MAX_QUEUE_BYTES = 64 * 1024 * 1024;
/** What an event without a body text weighs: its fields. */
const BASE_WEIGHT = 512;
/** What an event weighs in a queue: its body's text, or its fields when it carries none. */
const weightOf = (event: SignalEvent) => event[BODY_JSON]?.length ?? BASE_WEIGHT;

/**
 * Gives each sink its own bounded queue and one delivery at a time, in batches, in the
 * background: a slow or failing sink delays only itself, and a call never waits for any.
 * A failed batch is retried, whole and in order, with exponential backoff and full jitter
 * until it is delivered or shutdown's deadline passes (delivery is at least once). A sink with
 * `deliverNow` (a local file) takes each call's events as the call commits them instead, and
 * uses its queue (and the write-ahead log) only for what that refused.
 */
export function createSignalDispatcher(options: DispatcherOptions): SignalDispatcher {
  // Two sinks of one kind get numbered names, so that their metrics stay apart.
  const counts = new Map<string, number>();
  for (const sink of options.sinks) counts.set(sink.name, (counts.get(sink.name) ?? 0) + 1);
  const seen = new Map<string, number>();
  const { logger, writeAheadFile } = options;
  const writeAhead = writeAheadFile === undefined || options.sinks.length === 0 ? undefined : new WriteAheadLog(writeAheadFile, "signals'", logger);
  let seq = 0;
  let closing = false;
  // Every sink has taken each event up to the oldest one still queued anywhere.
  const delivered = () => {
    if (writeAhead === undefined || closing) return;
    const oldest = Math.min(...lanes.map((lane) => lane.oldestSeq));
    writeAhead.release(oldest === Infinity ? seq : oldest - 1);
  };
  const lanes = options.sinks.map((sink) => {
    const n = (seen.get(sink.name) ?? 0) + 1;
    seen.set(sink.name, n);
    return new Lane(sink, counts.get(sink.name)! > 1 ? `${sink.name}-${n}` : sink.name, options, delivered);
  });
  // A sink that takes a call's events at once (deliverNow) gets them at commit, not queued as they are emitted.
  const queued = lanes.filter((lane) => !lane.immediate);
  const immediate = lanes.filter((lane) => lane.immediate);
  const queueIn = (targets: readonly Lane[]) => (event: SignalEvent, weight = weightOf(event)) => {
    seq++;
    for (const lane of targets) lane.push(event, weight, seq);
  };
  const append = (line: string) => writeAhead!.append(line, seq);
  // What a previous process left goes to every sink through its queue.
  if (writeAhead !== undefined) replayLeftovers(writeAhead, queueIn(lanes), append, logger);
  // The write-ahead log is for events some sink still has to take.
  const keep = (events: readonly SignalEvent[]) => {
    if (writeAhead === undefined) return;
    let line: string;
    try {
      line = eventsJson(events);
    } catch (error) {
      return logger.error({ error: messageOf(error) }, "signal events could not be serialized for the write-ahead log");
    }
    append(line);
  };
  return {
    emit: queueIn(queued),
    commit(events) {
      if (events.length === 0) return;
      let waiting = queued.length > 0;
      // A sink that takes them itself but then fails to write them has them queued, and kept from then on.
      for (const lane of immediate) if (!lane.takeNow(events, seq, keep)) waiting = true;
      if (waiting) keep(events);
    },
    stats: () => lanes.map((lane) => lane.stats()),
    async close(timeoutMs) {
      // From here on the log lets go of nothing until the end: one lane's discards must not be released by another's delivery.
      closing = true;
      const discarded = (await Promise.all(lanes.map((lane) => lane.close(timeoutMs)))).reduce((sum, count) => sum + count, 0);
      if (writeAhead === undefined) return;
      if (discarded === 0) writeAhead.release(seq);
      else logger.warn({ events: discarded, writeAheadFile }, "signals not delivered before the shutdown deadline stay in the write-ahead log: the next start delivers them");
      writeAhead.close();
    },
  };
}

/**
 * Emits again the events a process that died left in its write-ahead log, each line appended
 * to the new log first. Sinks may get some twice (delivery is at least once; the event id tells
 * them apart); a line a crash cut short is skipped.
 */
function replayLeftovers(writeAhead: WriteAheadLog, emit: (event: SignalEvent, weight: number) => void, append: (line: string) => void, logger: Logger): void {
  writeAhead.adoptLeftovers((lines) => {
    let events = 0;
    for (const line of lines) {
      let batch: unknown;
      try {
        batch = JSON.parse(line);
      } catch {
        continue;
      }
      if (!Array.isArray(batch)) continue;
      for (const event of batch as SignalEvent[]) emit(event, BASE_WEIGHT + line.length / batch.length);
      append(line);
      events += batch.length;
    }
    if (events > 0) logger.info({ events }, "signals of a process that did not stop cleanly: delivering them again");
  });
}

class Lane {
  #events: SignalEvent[] = [];
  #weights: number[] = [];
  /** The dispatcher's sequence number of each queued event. */
  #seqs: number[] = [];
  /** Index of the first event still queued: shifting arrays per delivery would cost O(n). */
  #head = 0;
  #bytes = 0;
  #state: SinkStats["state"] = "idle";
  #delivered = 0;
  #retries = 0;
  #dropped = 0;
  #pumping = false;
  #closing = false;
  #delivery: AbortController | undefined;
  #wake: (() => void) | undefined;
  #drained: (() => void) | undefined;
  readonly #maxBytes: number;
  readonly #deliveryTimeoutMs: number;
  readonly #retryMs: number;
  readonly #maxRetryMs: number;

  constructor(
    readonly sink: SignalSink,
    readonly name: string,
    readonly options: DispatcherOptions,
    /** Told after each delivery, so that the write-ahead log lets go of what every sink took. */
    readonly onDelivered: () => void,
  ) {
    this.#maxBytes = options.maxQueueBytes ?? DEFAULT_MAX_QUEUE_BYTES;
    this.#deliveryTimeoutMs = options.deliveryTimeoutMs ?? 30_000;
    this.#retryMs = options.retryMs ?? 100;
    this.#maxRetryMs = options.maxRetryMs ?? 30_000;
  }

  /** Takes a call's events at commit (`deliverNow`) instead of queueing them as they are emitted. */
  get immediate(): boolean {
    return this.sink.deliverNow !== undefined;
  }

  /**
   * Hands a committed call's events to the sink at once; when it throws (or the lane is
   * closing), they are queued as `seq`, retried like any delivery, and false says so. When the
   * sink reports later that it could not write them, they are queued then and `refused` is told.
   */
  takeNow(events: readonly SignalEvent[], seq: number, refused: (events: readonly SignalEvent[]) => void): boolean {
    if (!this.#closing && this.#queued === 0) {
      try {
        this.sink.deliverNow!(events, (error) => {
          if (error === undefined) {
            this.#delivered += events.length;
            this.#state = "connected";
            return;
          }
          this.#refused(events, seq, error);
          refused(events);
        });
        return true;
      } catch (error) {
        this.#refused(events, seq, error);
        return false;
      }
    }
    this.#queue(events, seq);
    return false;
  }

  #refused(events: readonly SignalEvent[], seq: number, error: unknown): void {
    if (this.#state !== "retrying") this.options.logger.warn({ sink: this.name, events: events.length, error: messageOf(error) }, "signal delivery failed; retrying");
    this.#state = "retrying";
    this.#queue(events, seq);
  }

  #queue(events: readonly SignalEvent[], seq: number): void {
    for (const event of events) this.push(event, weightOf(event), seq);
  }

  get #queued(): number {
    return this.#events.length - this.#head;
  }

  /** The sequence number of the oldest event still queued; Infinity when none is. */
  get oldestSeq(): number {
    return this.#head < this.#seqs.length ? this.#seqs[this.#head] : Infinity;
  }

  push(event: SignalEvent, weight: number, seq: number): void {
    if (this.#closing || this.#queued >= this.options.queueSize || this.#bytes + weight > this.#maxBytes) {
      this.#drop(1);
      return;
    }
    this.#events.push(event);
    this.#weights.push(weight);
    this.#seqs.push(seq);
    this.#bytes += weight;
    if (!this.#pumping) {
      this.#pumping = true;
      // Started on the next turn at the earliest, so that the events of one burst go out as one batch.
      setImmediate(() => void this.#pump());
    }
  }

  stats(): SinkStats {
    return { name: this.name, state: this.#state, queued: this.#queued, delivered: this.#delivered, retries: this.#retries, dropped: this.#dropped };
  }

  /** Resolves with how many events were discarded at the deadline. */
  async close(timeoutMs: number): Promise<number> {
    this.#closing = true;
    let discarded = 0;
    if (this.#pumping) {
      const drained = new Promise<void>((resolve) => (this.#drained = resolve));
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
      // A lane waiting out a backoff tries once more at once.
      this.#wake?.();
      await Promise.race([drained, deadline]);
      clearTimeout(timer);
      if (this.#pumping) {
        const left = this.#queued;
        discarded = left;
        this.#delivery?.abort(new Error("shutdown deadline passed"));
        this.#wake?.();
        this.#discard();
        this.options.logger.warn({ sink: this.name, dropped: left }, "signals not delivered before the shutdown deadline");
      }
    }
    try {
      await this.sink.close();
    } catch (error) {
      this.options.logger.warn({ err: error, sink: this.name }, "a signal sink failed to close");
    }
    return discarded;
  }

  async #pump(): Promise<void> {
    let failures = 0;
    while (this.#queued > 0) {
      if (this.#queued < this.options.batchSize) await this.#linger();
      const end = Math.min(this.#events.length, this.#head + this.options.batchSize);
      const batch = this.#events.slice(this.#head, end);
      if (await this.#deliver(batch)) {
        failures = 0;
        this.#delivered += batch.length;
        this.#state = "connected";
        this.#take(end);
        this.onDelivered();
        continue;
      }
      if (this.#queued === 0) break; // discarded at the shutdown deadline
      this.#retries++;
      this.#state = "retrying";
      await this.#backoff(failures++);
    }
    this.#pumping = false;
    this.#drained?.();
  }

  async #deliver(batch: readonly SignalEvent[]): Promise<boolean> {
    const delivery = new AbortController();
    this.#delivery = delivery;
    const timer = setTimeout(() => delivery.abort(new Error("delivery timed out")), this.#deliveryTimeoutMs);
    try {
      // A sink that ignores the signal is not waited for past it.
      const aborted = new Promise<never>((_, reject) => delivery.signal.addEventListener("abort", () => reject(delivery.signal.reason), { once: true }));
      aborted.catch(() => {});
      await Promise.race([Promise.resolve().then(() => this.sink.deliver(batch, delivery.signal)), aborted]);
      return true;
    } catch (error) {
      if (this.#retries % 100 === 0 || this.#state !== "retrying") {
        this.options.logger.warn({ sink: this.name, events: batch.length, error: messageOf(error) }, "signal delivery failed; retrying");
      }
      return false;
    } finally {
      clearTimeout(timer);
      this.#delivery = undefined;
    }
  }

  /** Waits up to `lingerMs` for a batch to fill; shutdown cuts it short. */
  #linger(): Promise<void> {
    const lingerMs = this.options.lingerMs ?? 0;
    return lingerMs <= 0 || this.#closing ? Promise.resolve() : this.#sleep(lingerMs);
  }

  #backoff(failures: number): Promise<void> {
    const ceiling = Math.min(this.#maxRetryMs, this.#retryMs * 2 ** Math.min(failures, 30));
    return this.#sleep(Math.random() * ceiling);
  }

  /** A pause that close() ends at once through #wake. */
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = () => {
        this.#wake = undefined;
        done();
      };
    });
  }

  /** Forgets the events before `end`, compacting now and then. */
  #take(end: number): void {
    for (let i = this.#head; i < end; i++) this.#bytes -= this.#weights[i];
    this.#head = end;
    if (this.#head === this.#events.length) {
      this.#events = [];
      this.#weights = [];
      this.#seqs = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#events.length) {
      this.#events = this.#events.slice(this.#head);
      this.#weights = this.#weights.slice(this.#head);
      this.#seqs = this.#seqs.slice(this.#head);
      this.#head = 0;
    }
  }

  #discard(): void {
    this.#drop(this.#queued);
    this.#take(this.#events.length);
  }

  #drop(count: number): void {
    if (count === 0) return;
    if (this.#dropped === 0 || (this.#dropped + count) % 1000 < this.#dropped % 1000) {
      this.options.logger.warn({ sink: this.name, dropped: this.#dropped + count }, "signals dropped: the sink's queue is full or it is shutting down");
    }
    this.#dropped += count;
  }
}
