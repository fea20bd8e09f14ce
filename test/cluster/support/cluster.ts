import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import pg from "pg";
import type { ConfigInput } from "../../../src/config/schema.js";
import type { SignalEvent } from "../../../src/signals/sink.js";
import { REDIS_TEST_URL } from "../../limits/support/redis.js";
import { NATS_TEST_URL, inspector } from "../../signals/support/nats.js";
import { closedPort, postgresUrl } from "../../store/postgres-support.js";
import { chunks, completion, handle, startFakeProvider, type FakeProvider } from "../../support/fake-provider.js";
import { startHaproxy, type Haproxy } from "./haproxy.js";
import { defineInstance, type Instance } from "./instance.js";

const bin = join(import.meta.dirname, "../../../bin/passthrough.js");

/** Chunks a stream answer has (the provider's pieces and its last chunk with usage). */
export const STREAM_CHUNKS = 6;

export interface ClusterOptions {
  /** `auth.cacheTtlMs` of every instance. */
  cacheTtlMs: number;
  /** `server.drainDelayMs` of every instance. */
  drainDelayMs: number;
  /** Milliseconds the provider takes for a unary answer, and between two stream chunks. */
  providerDelayMs: number;
}

/**
 * HAProxy (deploy/haproxy.cfg) in front of two `passthrough serve` processes that share a
 * PostgreSQL schema of their own, Redis and a JetStream stream of their own, all on loopback,
 * with one provider imitation behind them.
 */
export interface Cluster {
  readonly haproxy: Haproxy;
  readonly instances: readonly Instance[];
  readonly provider: FakeProvider;
  /** Runs `passthrough <args> --config <instance1's file>`; resolves with its exit code and standard output. */
  cli(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }>;
  /** A new key in the shared store, made with the CLI (`keys create --name … [more]`). */
  createKey(...more: string[]): Promise<{ id: string; key: string }>;
  /** How many journal rows each of these keys has in PostgreSQL. */
  journalCounts(keys: readonly string[]): Promise<Map<string, number>>;
  /** Every event in the stream, in stream order (duplicates included). */
  signals(): Promise<SignalEvent[]>;
  close(): Promise<void>;
}

export async function startCluster({ cacheTtlMs, drainDelayMs, providerDelayMs }: ClusterOptions): Promise<Cluster> {
  const tag = randomBytes(4).toString("hex");
  const folder = mkdtempSync(join(tmpdir(), "passthrough-cluster-"));
  const schema = `passthrough_cluster_${tag}`;
  const streamName = `PASSTHROUGH_CLUSTER_${tag}`;
  const subject = `passthrough-cluster.${tag}.signals`;
  const closers: (() => Promise<unknown>)[] = [];
  const close = async () => {
    for (const closer of closers.reverse()) await closer().catch(() => undefined);
    rmSync(folder, { recursive: true, force: true });
  };
  try {
    const database = new pg.Client(postgresUrl);
    await database.connect();
    closers.push(async () => {
      await database.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await database.end();
    });
    const nats: NatsConnection = await inspector();
    const manager: JetStreamManager = await jetstreamManager(nats);
    await manager.streams.add({ name: streamName, subjects: [subject] });
    closers.push(async () => {
      await manager.streams.delete(streamName);
      await nats.close();
    });
    const provider = await startFakeProvider();
    closers.push(() => provider.close());
    provider.setDefault(answerSlowly(providerDelayMs));

    const config: ConfigInput = {
      server: { shutdownTimeoutMs: 10_000, drainDelayMs },
      providers: [{ name: "local", baseUrl: provider.url, retries: 0 }],
      database: { url: postgresUrl, schema },
      auth: { cacheTtlMs },
      limits: { redisUrl: REDIS_TEST_URL },
      // One folder for both: each instance's spool is its own file in it.
      journal: { spoolDir: join(folder, "journal-spool") },
      signals: { sinks: [{ type: "nats", url: NATS_TEST_URL, subject }] },
      logging: { level: "info" },
    };
    const ports = [await closedPort(), await closedPort()];
    const instances = ports.map((port, index) => defineInstance(`instance${index + 1}`, port, folder, config));
    closers.push(() => Promise.all(instances.map((instance) => instance.terminate(5000))));
    const cli = (...args: string[]) =>
      new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, [bin, ...args, "--config", instances[0].configFile], { cwd: folder, env: { PATH: process.env.PATH } });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
        child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
        child.once("close", (code) => resolve({ code, stdout, stderr }));
      });
    // As the README says to deploy: the store gets its first key from the CLI (which applies the
    // migrations), so that no instance makes one of its own; then the instances start.
    const first = await cli("keys", "create", "--name", "operator");
    if (first.code !== 0) throw new Error(`keys create failed (${first.code}): ${first.stderr}`);
    await Promise.all(instances.map((instance) => instance.start()));
    const haproxy = await startHaproxy({ port: await closedPort(), instances: ports, socket: join(folder, "haproxy.sock") });
    closers.push(() => haproxy.stop());
    await haproxy.waitFor(["instance1", "instance2"], "UP");
    return {
      haproxy,
      instances,
      provider,
      cli,
      async createKey(...more) {
        const { code, stdout, stderr } = await cli("keys", "create", "--name", `cluster-${randomBytes(3).toString("hex")}`, ...more);
        if (code !== 0) throw new Error(`keys create failed (${code}): ${stderr}`);
        const key = stdout.trim();
        return { id: key.split("_")[1], key };
      },
      async journalCounts(keys) {
        const { rows } = await database.query<{ key: string; count: string }>(`SELECT key, count(*) AS count FROM ${schema}.journal WHERE key = ANY($1) GROUP BY key`, [keys]);
        return new Map(rows.map((row) => [row.key, Number(row.count)]));
      },
      async signals() {
        const count = (await manager.streams.info(streamName)).state.messages;
        if (count === 0) return [];
        const consumer = await jetstream(nats).consumers.get(streamName);
        const events: SignalEvent[] = [];
        for await (const message of await consumer.fetch({ max_messages: count, expires: 5000 })) {
          events.push(message.json<SignalEvent>());
          if (events.length === count) break;
        }
        await consumer.delete().catch(() => undefined);
        return events;
      },
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}

/** A provider that takes its time: a unary answer after `delayMs`, a stream of STREAM_CHUNKS chunks `delayMs` apart. */
function answerSlowly(delayMs: number) {
  const sleep = () => new Promise((resolve) => setTimeout(resolve, delayMs));
  return handle(async (request, res) => {
    const stream = (request.json as { stream?: unknown } | undefined)?.stream === true;
    if (!stream) {
      await sleep();
      const body = JSON.stringify(completion("m"));
      if (!res.destroyed) res.writeHead(200, { "content-type": "application/json" }).end(body);
      return;
    }
    res.writeHead(200, { "content-type": "text/event-stream" });
    for (const chunk of chunks(STREAM_CHUNKS - 1)) {
      if (res.destroyed) return;
      res.write(`data: ${JSON.stringify(chunk)}\n\n`);
      await sleep();
    }
    res.end("data: [DONE]\n\n");
  });
}
