import { createServer } from "node:net";
import pg from "pg";
import { describe, it } from "vitest";

/** The test database: PostgreSQL on this machine, trust authentication (PASSTHROUGH_TEST_POSTGRES_URL to change it). */
export const postgresUrl = process.env.PASSTHROUGH_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";

/** Undefined when PostgreSQL answers, else why not. */
export async function probePostgres(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: postgresUrl, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query("SELECT 1");
    return undefined;
  } catch (error) {
    return (error as Error).message || (error as NodeJS.ErrnoException).code || "unreachable";
  } finally {
    await client.end().catch(() => undefined);
  }
}

/**
 * True when PostgreSQL answers; else registers a suite `name` whose one test fails with the
 * reason. This machine kind runs PostgreSQL and .ci/run checks it: a missing server fails, never skips.
 */
export async function requirePostgres(name: string): Promise<boolean> {
  const unreachable = await probePostgres();
  if (unreachable === undefined) return true;
  describe(name, () => {
    it("needs PostgreSQL at 127.0.0.1:5432", () => {
      throw new Error(`PostgreSQL is unreachable at ${postgresUrl}: ${unreachable}`);
    });
  });
  return false;
}

/** A local port with nothing listening on it. */
export async function closedPort(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}
