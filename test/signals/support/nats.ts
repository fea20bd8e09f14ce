import { connect, type NatsConnection } from "@nats-io/transport-node";

/** The NATS server the tests use, with JetStream: NATS_URL, else the local one. */
export const NATS_TEST_URL = process.env.NATS_URL ?? "nats://127.0.0.1:4222";

/** A plain connection for creating streams and reading them back. */
export function inspector(): Promise<NatsConnection> {
  return connect({ servers: NATS_TEST_URL.replace(/^nats:\/\//, ""), timeout: 2000, maxReconnectAttempts: 0 });
}

/** Undefined when NATS answers with JetStream on, else why not. */
export async function probeNats(): Promise<string | undefined> {
  let connection: NatsConnection | undefined;
  try {
    connection = await inspector();
    if (connection.info?.jetstream !== true) return "JetStream is not enabled (run nats-server with -js)";
    await connection.flush();
    return undefined;
  } catch (error) {
    return (error as Error).message || "unreachable";
  } finally {
    await connection?.close().catch(() => undefined);
  }
}

/** Fails the suite when NATS is unreachable (call in beforeAll): this machine kind runs it, and .ci/run checks it. */
export function assertNats(unreachable: string | undefined): void {
  if (unreachable !== undefined) throw new Error(`NATS at ${NATS_TEST_URL} is unusable: ${unreachable}; start it (see .ci/run)`);
}
