import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";

/** The Redis the tests use: REDIS_URL, else the local one. */
export const REDIS_TEST_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";


/** A plain client for looking at and cleaning up what the limiters wrote. */
export function inspector(): Redis {
  return new Redis(REDIS_TEST_URL, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 1000, retryStrategy: () => null });
}

/** Whether Redis answers a PING within a second. */
export async function redisReachable(): Promise<boolean> {
  const client = inspector();
  client.on("error", () => {});
  try {
    await client.connect();
    return (await client.ping()) === "PONG";
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

/** A key prefix of the run's own, so that runs and other users of the Redis never meet. */
export function testKeyPrefix(): string {
  return `passthrough-test:limits:${randomUUID()}:`;
}

/** Deletes every key under a prefix. */
export async function deleteKeys(client: Redis, prefix: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await client.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 500);
    if (keys.length > 0) await client.del(...keys);
    cursor = next;
  } while (cursor !== "0");
}

/** Fails the suite when Redis is unreachable (call in beforeAll): this machine kind runs it, and .ci/run checks it. */
export function assertRedis(reachable: boolean): void {
  if (!reachable) throw new Error(`Redis at ${REDIS_TEST_URL} is unreachable: start it (see .ci/run)`);
}
