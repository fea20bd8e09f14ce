import { jetstream, type JetStreamClient } from "@nats-io/jetstream";
import { connect, headers, type ConnectionOptions, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import { eventJson, type SignalEvent, type SignalSink, type SinkContext } from "../sink.js";
import { abortedError, untilAborted } from "./abort.js";

export interface NatsSinkOptions {
  /**
   * `nats://host:port`, or `tls://host:port` to require TLS. Credentials in it are used as
   * `user:password`, or a lone user part as a token. Required.
   */
  url: string;
  /** The subject each event is published on; a JetStream stream the operator created must capture it. Required. */
  subject: string;
  /** Bounds connecting and each publish's acknowledgement. Default 5 s. */
  timeoutMs?: number;
}

/**
 * The `nats` sink (SPEC section 6): each event is one JetStream message on `subject`, its JSON
 * as the payload, `Nats-Msg-Id` set to the event id (so that JetStream drops a retried event
 * within the stream's duplicate window) and CloudEvents binary-mode headers. The sink never
 * creates the stream.
 */
export function createNatsSink(options: NatsSinkOptions, context?: SinkContext): SignalSink {
  const { url, subject, timeoutMs = 5000 } = options;
  if (typeof subject !== "string" || !/^[^\s*>]+$/.test(subject)) throw new TypeError("subject must be a subject without spaces or wildcards");
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) throw new RangeError(`timeoutMs must be a positive integer, got ${timeoutMs}`);
  return new NatsSink(connectionOptions(url, timeoutMs), subject, timeoutMs, context);
}

/** The client's options for a sink URL; the URL itself never reaches a message, as it may hold a password. */
function connectionOptions(url: string, timeoutMs: number): ConnectionOptions {
  let parsed: URL | undefined;
  try {
    if (typeof url === "string" && /^(nats|tls):\/\/[^\s/]+$/.test(url)) parsed = new URL(url);
  } catch {
    // reported below
  }
  if (parsed === undefined || parsed.host === "") throw new TypeError("url must be a nats://host:port or tls://host:port URL");
  const user = decodeURIComponent(parsed.username);
  const password = decodeURIComponent(parsed.password);
  return {
    servers: parsed.host,
    name: "passthrough-signals",
    timeout: timeoutMs,
    // The client reconnects in the background for as long as the sink lives; meanwhile deliveries fail fast.
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1000,
    ...(parsed.protocol === "tls:" ? { tls: {} } : {}),
    ...(user !== "" && password !== "" ? { user, pass: password } : user !== "" ? { token: user } : {}),
  };
}

/** CloudEvents binary mode: the event's attributes as `ce-*` headers, the event itself as the data. */
export function cloudEventHeaders(event: SignalEvent): MsgHdrs {
  const h = headers();
  h.set("ce-specversion", "1.0");
  h.set("ce-id", event.id);
  h.set("ce-type", `sh.smarter.passthrough.${event.signal}`);
  h.set("ce-source", event.source);
  h.set("ce-time", event.time);
  h.set("content-type", "application/json");
  return h;
}

interface Connected {
  readonly connection: NatsConnection;
  readonly js: JetStreamClient;
}

/**
 * Connects on the first delivery; a failed connect is tried again on the next one. While the
 * client has lost its server (and reconnects in the background) a delivery rejects at once,
 * rather than piling the batch into the client's buffer; once it is connected, every publish
 * waits at most `timeoutMs` for its acknowledgement.
 */
class NatsSink implements SignalSink {
  readonly name = "nats";
  readonly #options: ConnectionOptions;
  readonly #subject: string;
  readonly #timeoutMs: number;
  readonly #context: SinkContext | undefined;
  readonly #encoder = new TextEncoder();
  #connected: Promise<Connected> | undefined;
  /** The connection once made, until it closes: what close() closes. */
  #connection: NatsConnection | undefined;
  #disconnected = false;
  #closing: Promise<void> | undefined;

  constructor(options: ConnectionOptions, subject: string, timeoutMs: number, context: SinkContext | undefined) {
    this.#options = options;
    this.#subject = subject;
    this.#timeoutMs = timeoutMs;
    this.#context = context;
  }

  async deliver(events: readonly SignalEvent[], signal: AbortSignal): Promise<void> {
    if (this.#closing) throw new Error("the NATS sink is closed");
    if (signal.aborted) throw abortedError(signal, "the NATS delivery");
    const { js } = await untilAborted(this.#connect(), signal, "the NATS delivery");
    if (this.#disconnected) throw new Error("the NATS sink lost its server; the client is reconnecting");
    // Each publish goes out in the batch's order when it is called; the acknowledgements are awaited together.
    const acks = events.map((event) =>
      js.publish(this.#subject, this.#encoder.encode(eventJson(event)), { msgID: event.id, headers: cloudEventHeaders(event), timeout: this.#timeoutMs }),
    );
    try {
      await untilAborted(Promise.all(acks), signal, "the NATS delivery");
    } catch (error) {
      if (signal.aborted) throw error;
      // The client's name for "no one answered": no stream captures the subject.
      const reason = (error as Error).name === "JetStreamNotEnabled" ? `no stream captures ${this.#subject}, or JetStream is off` : (error as Error).message;
      throw new Error(`JetStream did not acknowledge the batch: ${reason}`, { cause: error });
    }
  }

  /**
   * Closes the connection; a connect still under way is not waited for (a server that accepts
   * but never speaks holds it for `timeoutMs`, past shutdown's deadline): it closes what it makes.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const connection = this.#connection;
      this.#connected = undefined;
      this.#connection = undefined;
      await connection?.close().catch(() => {});
    })();
    return this.#closing;
  }

  #connect(): Promise<Connected> {
    if (this.#connected) return this.#connected;
    const connecting = connect(this.#options).then(
      (connection) => {
        if (this.#closing) {
          void connection.close().catch(() => {});
          throw new Error("the NATS sink is closed");
        }
        this.#connection = connection;
        this.#disconnected = false;
        void this.#watch(connection, connecting);
        return { connection, js: jetstream(connection, { timeout: this.#timeoutMs }) };
      },
      (error: unknown) => {
        if (this.#connected === connecting) this.#connected = undefined;
        throw new Error(`the NATS sink could not connect: ${(error as Error).message}`, { cause: error });
      },
    );
    this.#connected = connecting;
    return connecting;
  }

  /** Follows the connection's status: fail fast while it is down, and connect anew after the client gave up. */
  async #watch(connection: NatsConnection, connecting: Promise<Connected>): Promise<void> {
    void connection.closed().then(() => {
      if (this.#connected === connecting) this.#connected = undefined;
      if (this.#connection === connection) this.#connection = undefined;
    });
    for await (const status of connection.status()) {
      if (this.#connected !== connecting) return;
      if (status.type === "disconnect") {
        this.#disconnected = true;
        this.#context?.logger.warn({ sink: this.name }, "signals: the NATS sink lost its server; reconnecting");
      } else if (status.type === "reconnect") {
        this.#disconnected = false;
        this.#context?.logger.info({ sink: this.name }, "signals: the NATS sink is connected again");
      }
    }
  }
}
