import { describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import { createSink } from "../../src/signals/sinks/index.js";
import { silentContext } from "./sink.contract.js";
import { closedPort } from "./support/services.js";

describe("createSink", () => {
  it("builds the sink each configured type names, without reaching its server", async () => {
    const port = await closedPort();
    const config = parseConfig({
      signals: {
        sinks: [
          { type: "log" },
          { type: "webhook", url: `http://127.0.0.1:${port}/hook`, secret: "s" },
          { type: "nats", url: `nats://127.0.0.1:${port}`, subject: "signals" },
          { type: "redis", url: `redis://127.0.0.1:${port}`, stream: "signals" },
          { type: "module", path: "test/signals/fixtures/recording-sink.mjs", options: { into: [] } },
        ],
      },
    });
    const sinks = await Promise.all(config.signals.sinks.map((sink) => createSink(sink, silentContext)));
    expect(sinks.map((sink) => sink.name)).toEqual(["log", "webhook", "nats", "redis", "recording"]);
    await Promise.all(sinks.map((sink) => sink.close()));
  });

  it("defaults to one log sink", async () => {
    const [only, ...rest] = parseConfig({}).signals.sinks;
    expect(rest).toEqual([]);
    const sink = await createSink(only, silentContext);
    expect(sink.name).toBe("log");
    await sink.close();
  });
});
