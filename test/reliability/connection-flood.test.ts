/**
 * Many connections at once: silent ones are all closed by the first-bytes deadline while the
 * gateway keeps serving, and past maxConnections a new one is refused at once.
 */
import * as net from "node:net";
import { describe, expect, it } from "vitest";
import { normalCall, sleep, startAbuseTarget } from "./support/abuse.js";

const MEMORY_BOUND_BYTES = 64 * 1024 * 1024;

/** Opens `count` connections (in batches, within the listen backlog) that send nothing; each records when the gateway closed it, in ms from its connect. */
async function openSilent(url: string, count: number): Promise<{ sockets: net.Socket[]; closedAfter: Promise<number>[] }> {
  const { hostname, port } = new URL(url);
  const sockets: net.Socket[] = [];
  const closedAfter: Promise<number>[] = [];
  for (let at = 0; at < count; at += 100) {
    const batch = Array.from({ length: Math.min(100, count - at) }, () => {
      const socket = net.connect(Number(port), hostname);
      socket.on("error", () => {});
      sockets.push(socket);
      return new Promise<void>((resolve) =>
        socket.once("connect", () => {
          const connectedAt = Date.now();
          closedAfter.push(new Promise((closed) => socket.once("close", () => closed(Date.now() - connectedAt))));
          resolve();
        }),
      );
    });
    await Promise.all(batch);
  }
  return { sockets, closedAfter };
}

describe("a flood of connections", () => {
  it("closes 1,000 connections that send nothing within the first-bytes deadline, serving calls throughout", async () => {
    const firstBytesTimeoutMs = 1500;
    const target = await startAbuseTarget({ firstBytesTimeoutMs });
    try {
      const rssBefore = target.gateway.rssBytes();
      target.gateway.resetPeak();
      const started = Date.now();
      let serving = true;
      const statuses: number[] = [];
      const calls = (async () => {
        while (serving) {
          statuses.push(await normalCall(target.gateway.url).catch(() => 0));
          await sleep(100);
        }
      })();

      const { closedAfter } = await openSilent(target.gateway.url, 1000);
      const opened = Date.now() - started;
      const closes = await Promise.all(closedAfter);
      serving = false;
      await calls;

      expect(opened).toBeLessThan(firstBytesTimeoutMs);
      expect(Math.min(...closes)).toBeGreaterThanOrEqual(firstBytesTimeoutMs * 0.9);
      expect(Math.max(...closes)).toBeLessThan(firstBytesTimeoutMs + 1500);
      expect(statuses.length).toBeGreaterThan(5);
      expect(statuses.every((status) => status === 200)).toBe(true);
      expect(target.gateway.peakRssBytes() - rssBefore).toBeLessThan(MEMORY_BOUND_BYTES);
    } finally {
      await target.close();
    }
  });

  it("closes a connection past maxConnections at once, and serves again once some close", async () => {
    const maxConnections = 50;
    const target = await startAbuseTarget({ maxConnections, firstBytesTimeoutMs: 20_000 });
    try {
      const { sockets } = await openSilent(target.gateway.url, maxConnections);
      await sleep(200);
      const [extra] = (await openSilent(target.gateway.url, 1)).closedAfter;
      expect(await Promise.race([extra, sleep(1000).then(() => "still open")])).toBeLessThan(1000);
      await expect(normalCall(target.gateway.url)).rejects.toThrow();

      for (const socket of sockets.slice(0, 10)) socket.destroy();
      await sleep(200);
      expect(await normalCall(target.gateway.url)).toBe(200);
      for (const socket of sockets) socket.destroy();
    } finally {
      await target.close();
    }
  });
});
