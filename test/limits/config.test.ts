import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, parseConfig } from "../../src/config/load.js";

describe("the limits configuration", () => {
  it("is unlimited and in memory by default", () => {
    expect(parseConfig({}).limits).toEqual({});
  });

  it("accepts SPEC section 10's limits", () => {
    const limits = { requestsPerMinute: 600, tokensPerMinute: 200000, redisUrl: "redis://127.0.0.1:6379" };
    expect(parseConfig({ limits }).limits).toEqual(limits);
  });

  it("takes REDIS_URL over the file's redisUrl, as DATABASE_URL over database.url", () => {
    const env = { REDIS_URL: "rediss://cache.internal:6380/2" };
    expect(loadConfig({ file: "/dev/null", env }).config.limits.redisUrl).toBe("rediss://cache.internal:6380/2");
  });

  it.each([
    ["a zero rate", { requestsPerMinute: 0 }, "limits.requestsPerMinute"],
    ["a fractional rate", { tokensPerMinute: 1.5 }, "limits.tokensPerMinute"],
    ["a URL that is not Redis's", { redisUrl: "http://127.0.0.1:6379" }, "limits.redisUrl"],
    ["an unknown key", { burst: 5 }, "burst"],
  ])("refuses %s, naming the field", (_name, limits, field) => {
    expect(() => parseConfig({ limits })).toThrow(ConfigError);
    expect(() => parseConfig({ limits })).toThrow(field);
  });

  it("refuses a REDIS_URL that is not a Redis URL, naming the field", () => {
    expect(() => loadConfig({ file: "/dev/null", env: { REDIS_URL: "127.0.0.1:6379" } })).toThrow("limits.redisUrl");
  });
});
