/**
 * Many connections at once: silent ones are all closed by the first-bytes deadline while the
 * gateway keeps serving, and past maxConnections a new one is refused at once.
 */
import * as net from "node:net";
import { describe, expect, it } from "vitest";
import { normalCall, sleep, startAbuseTarget } from "./support/abuse.js";

const MEMORY_BOUND_BYTES = 64 * 1024 * 1024;

/**
 * Opens `count` connections (in batches, within the listen backlog) that send nothing; each
 * records when it connected and when the gateway closed it (Date.now()).
 */
async function openSilent(url: string, count: number): Promise<{ sockets: net.Socket[]; closedAfter: Promise<{ connectedAt: number; closedAt: number }>[] }> {
  const { hostname, port } = new URL(url);
  const sockets: net.Socket[] = [];
  const closedAfter: Promise<{ connectedAt: number; closedAt: number }>[] = [];
  for (let at = 0; at < count; at += 100) {
    const batch = Array.from({ length: Math.min(100, count - at) }, () => {
      const socket = net.connect(Number(port), hostname);
      socket.on("error", () => {});
      sockets.push(socket);
      return new Promise<void>((resolve) =>
        socket.once("connect", () => {
          const connectedAt = Date.now();
          closedAfter.push(new Promise((closed) => socket.once("close", () => closed({ connectedAt, closedAt: Date.now() }))));
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
    const firstBytesTimeoutMs = 3000;
    const target = await startAbuseTarget({ firstBytesTimeoutMs });
    try {
      const rssBefore = target.gateway.rssBytes();
      target.gateway.resetPeak();
      let serving = true;
      const statuses: number[] = [];
      const calls = (async () => {
        while (serving) {
          statuses.push(await normalCall(target.gateway.url).catch(() => 0));
          await sleep(100);
        }
      })();

      const { closedAfter } = await openSilent(target.gateway.url, 1000);
      const connections = await Promise.all(closedAfter);
      serving = false;
      await calls;

      const closes = connections.map(({ connectedAt, closedAt }) => closedAt - connectedAt);
      // All 1,000 were open at once: the last connected before the first was closed.
      expect(Math.max(...connections.map((c) => c.connectedAt))).toBeLessThan(Math.min(...connections.map((c) => c.closedAt)));
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
      const closed = await Promise.race([extra.then(({ connectedAt, closedAt }) => closedAt - connectedAt), sleep(1000).then(() => "still open")]);
      expect(closed).toBeLessThan(1000);
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
