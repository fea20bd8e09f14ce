// The benchmark's "gateway, all off" target: the built gateway with authentication and the journal
// switched off (options the configuration file cannot set), and the config's `signals.sinks: []`;
// with --auth, its "auth only" target: authentication on, the journal and the sinks still off;
// with --floor, its "floor" target: still all off, but with the least work the journal and the
// log sink must do per call, done the cheapest way (`floorListener`).
// Plain JavaScript, so that like `passthrough serve` it runs without a loader thread.
// Usage: node test/bench/gateway-off.mjs --config FILE --port N [--auth | --floor]
import { randomUUID } from "node:crypto";
import { openSync } from "node:fs";
import { parseArgs } from "node:util";
import { loadConfig } from "../../dist/config/load.js";
import { appendInTurn } from "../../dist/durable/turn-appends.js";
import { journalEntryOf } from "../../dist/journal/entry.js";
import { createLogger } from "../../dist/logging/logger.js";
import { startGateway } from "../../dist/server/gateway.js";
import { openStore } from "../../dist/store/open.js";

const { values } = parseArgs({
  options: { config: { type: "string" }, port: { type: "string" }, auth: { type: "boolean", default: false }, floor: { type: "boolean", default: false } },
  strict: true,
});
const port = Number(values.port);
if (!values.config || !Number.isInteger(port) || port < 0 || port > 65535 || (values.auth && values.floor)) {
  process.stderr.write("usage: node test/bench/gateway-off.mjs --config FILE --port N [--auth | --floor]\n");
  process.exit(2);
}

const { config } = loadConfig({ file: values.config, env: process.env, overrides: { port } });
const logger = createLogger({ level: config.logging.level });
const onCallEnd = values.floor ? [floorListener(await openStore(config.database.url))] : [];
// `journal: false` skips the journal writer; a gateway without that option ignores it.
const gateway = await startGateway({ config, env: process.env, logger, authenticate: values.auth, journal: false, calls: { onCallEnd } });

/**
 * What the journal and the log sink cannot do without, per call, and nothing else: the entry
 * (`journalEntryOf`, as the journal builds it) queued and inserted with the real store (its
 * SQLite schema and indexes) 50 ms of calls at a time, and the entry's line and the four events
 * of a successful call (each with its own UUID and the call's request id) as JSON lines written
 * with template strings, the lines of the calls that end in one turn in one write
 * (`appendInTurn`). Nothing waits for that write (the shipped gateway's answers do), and nothing
 * here checks, escapes, bounds, retries or counts: a lower bound for everything on, not a design.
 */
function floorListener(store) {
  const fd = openSync("floor.jsonl", "a");
  const written = () => {};
  let entries = [];
  setInterval(() => {
    if (entries.length === 0) return;
    const batch = entries;
    entries = [];
    store.writeJournal(batch).catch((error) => logger.error({ err: error }, "floor: journal batch failed"));
  }, 50).unref();
  return (call) => {
    const entry = journalEntryOf(call);
    entries.push(entry);
    const { requestBody, responseBody } = entry;
    const time = entry.time.toISOString();
    const usageJson = `{"prompt_tokens":${entry.promptTokens},"completion_tokens":${entry.completionTokens},"total_tokens":${entry.totalTokens}}`;
    const head = `"request_id":"${randomUUID()}","journal_key":"${entry.key}","time":"${time}","provider":"${entry.provider}","protocol":"${entry.protocol}","principal":null,"source":"floor"`;
    const event = (signal, data) => `{"signal":"${signal}","id":"${randomUUID()}",${head},"data":${data}}\n`;
    const lines =
      `{"key":"${entry.key}","time":"${time}","protocol":"${entry.protocol}","status":${entry.status},"grpcCode":${entry.grpcCode},"upstreamStatus":${entry.upstreamStatus},"durationMs":${entry.durationMs},"usage":${usageJson},"requestBody":${requestBody},"responseBody":${responseBody}}\n` +
      event("chat_started", "{}") +
      event("chat_completion_request", `{"body":${requestBody}}`) +
      event("chat_completion_response", `{"upstream_status":${entry.upstreamStatus},"usage":${usageJson},"body":${responseBody}}`) +
      event("chat_finished", `{"code":"ok","status":${entry.status},"duration_ms":${entry.durationMs}}`);
    appendInTurn(fd, lines, written);
  };
}

process.once("SIGTERM", () => {
  gateway.close().then(
    () => {
      logger.flush();
      process.exit(0);
    },
    (error) => {
      logger.error({ err: error }, "shutdown failed");
      logger.flush();
      process.exit(1);
    },
  );
});
