import type { SinkConfig } from "../../config/schema.js";
import type { SignalSink, SinkContext } from "../sink.js";

/**
 * The sink a `signals.sinks` entry names. Each kind is imported only when configured, so that a
 * gateway logging its signals never loads the NATS or Redis client.
 */
export async function createSink(config: SinkConfig, context: SinkContext): Promise<SignalSink> {
  switch (config.type) {
    case "log": {
      const { createLogSink } = await import("./log.js");
      // The log sink is a log: prompt and answer bodies only of events emitted while logging.logPrompt was on.
      const { logging } = context;
      return createLogSink({ path: config.path, keepBodies: (event) => logging === undefined || (logging.logPrompt && Date.parse(event.time) >= logging.logPromptSince) });
    }
    case "webhook": {
      const { createWebhookSink } = await import("./webhook.js");
      return createWebhookSink({ url: config.url, secret: config.secret, timeoutMs: config.timeoutMs }, context);
    }
    case "nats": {
      const { createNatsSink } = await import("./nats.js");
      return createNatsSink({ url: config.url, subject: config.subject }, context);
    }
    case "redis": {
      const { createRedisSink } = await import("./redis.js");
      return createRedisSink({ url: config.url, stream: config.stream, maxLen: config.maxLen }, context);
    }
    case "module": {
      const { loadModuleSink } = await import("./module.js");
      return loadModuleSink({ path: config.path, options: config.options }, context);
    }
  }
}
