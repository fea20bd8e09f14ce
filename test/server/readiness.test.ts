import { describe, expect, it } from "vitest";
import { createReadiness } from "../../src/server/readiness.js";
import type { SinkStats } from "../../src/signals/dispatcher.js";

// The readiness report's own rules, with a store whose ping the test answers.
function pingable() {
  const pending: Array<{ resolve: () => void; reject: (error: Error) => void }> = [];
  return {
    pings: 0,
    pending,
    ping(): Promise<void> {
      this.pings++;
      return new Promise((resolve, reject) => pending.push({ resolve, reject }));
    },
    answer(ok = true) {
      for (const { resolve, reject } of pending.splice(0)) ok ? resolve() : reject(new Error("down"));
    },
  };
}

const sink = (state: SinkStats["state"]): SinkStats => ({ name: "webhook", state, queued: 3, delivered: 1, retries: 2, dropped: 0 });

describe("createReadiness", () => {
  it("shares one ping among concurrent probes and reuses its answer for cacheMs", async () => {
    const store = pingable();
    const readiness = createReadiness({ store, sinks: () => [], draining: new AbortController().signal, cacheMs: 100 });
    const probes = Promise.all(Array.from({ length: 20 }, () => readiness.report()));
    store.answer();
    expect((await probes).every((report) => report.status === "ready")).toBe(true);
    expect(store.pings).toBe(1);
    await readiness.ready();
    expect(store.pings).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 120));
    const later = readiness.report();
    store.answer(false);
    expect(await later).toMatchObject({ status: "unavailable", store: { reachable: false } });
    expect(store.pings).toBe(2);
  });

  it("counts a ping that does not answer within pingTimeoutMs as unreachable, and sends no other while it is unanswered", async () => {
    const store = pingable();
    const readiness = createReadiness({ store, sinks: () => [], draining: new AbortController().signal, pingTimeoutMs: 50, cacheMs: 10 });
    const startedAt = Date.now();
    expect(await readiness.ready()).toBe(false);
    expect(Date.now() - startedAt).toBeLessThan(1000);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await readiness.ready()).toBe(false);
    expect(store.pings).toBe(1);
    store.answer();
    await new Promise((resolve) => setTimeout(resolve, 20));
    const again = readiness.ready();
    store.answer();
    expect(await again).toBe(true);
    expect(store.pings).toBe(2);
  });

  it("reports draining before anything else, the sinks' states and the journal's waiting entries", async () => {
    const store = pingable();
    const draining = new AbortController();
    const readiness = createReadiness({
      store,
      sinks: () => [sink("retrying")],
      journal: () => ({ queued: 2, spoolPending: 1, spooled: 5 }),
      draining: draining.signal,
    });
    const before = readiness.report();
    store.answer();
    expect(await before).toEqual({ status: "ready", store: { reachable: true }, sinks: [{ name: "webhook", state: "retrying" }], journal: { queued: 3, spooled: 5 } });
    draining.abort();
    expect(await readiness.report()).toMatchObject({ status: "draining", store: { reachable: true } });
    expect(await readiness.ready()).toBe(false);
  });
});
