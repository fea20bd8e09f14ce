import { afterAll, describe, expect, it } from "vitest";
import { spawnGateway, type ChildGateway } from "./support/child-gateway.js";

describe("the child gateway used by the reliability suites", () => {
  let gateway: ChildGateway | undefined;
  afterAll(async () => {
    await gateway?.stop();
  });

  it("serves, reports its memory, and stops with exit code 0", async () => {
    gateway = await spawnGateway({});
    const health = await fetch(`${gateway.url}/healthz`);
    expect(health.status).toBe(200);
    expect(gateway.rssBytes()).toBeGreaterThan(10 * 1024 * 1024);
    gateway.resetPeak();
    expect(gateway.peakRssBytes()).toBeGreaterThanOrEqual(gateway.rssBytes() * 0.9);
    expect(await gateway.stop()).toBe(0);
    expect(gateway.alive()).toBe(false);
  });
});
