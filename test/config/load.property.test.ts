import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { ConfigError, loadConfig, parseConfig } from "../../src/config/load.js";

// A configuration file is written by hand: whatever it holds, parseConfig accepts it or throws
// a ConfigError whose message names the field at fault.

const anything = fc.anything({
  withBigInt: true,
  withBoxedValues: true,
  withDate: true,
  withMap: true,
  withSet: true,
  withNullPrototype: true,
  withSparseArray: true,
  withTypedArray: true,
  maxDepth: 2,
});

/** Mostly a value of the right shape, sometimes anything at all. */
const near = <T>(valid: fc.Arbitrary<T>) => fc.oneof({ arbitrary: valid, weight: 4 }, anything);

/** An object with some of these keys, now and then one the schema does not know. */
function section(fields: Record<string, fc.Arbitrary<unknown>>): fc.Arbitrary<Record<string, unknown>> {
  const known = fc.record(fields, { requiredKeys: [] });
  return near(fc.tuple(known, fc.option(fc.tuple(fc.constantFrom("extra", "Port", "__proto__"), anything), { freq: 6 })).map(([value, extra]) => {
    if (extra !== null) Object.defineProperty(value, extra[0], { value: extra[1], enumerable: true });
    return value;
  })) as fc.Arbitrary<Record<string, unknown>>;
}

const integer = fc.oneof(fc.integer({ min: -1, max: 70_000 }), fc.constantFrom(0, 1.5, Number.NaN, Infinity, 2 ** 53));
const text = fc.oneof(fc.constantFrom("", "127.0.0.1", "http://127.0.0.1:9000/v1", "ftp://x", "not a url", "openai", "My-Provider", "info"), fc.string({ maxLength: 8 }));
const provider = section({ name: text, baseUrl: text, apiKeyEnv: text, credential: near(fc.constantFrom("apiKey", "google", "none", "x")), headers: near(fc.dictionary(fc.string(), text)), timeoutMs: integer, retries: integer, enabled: near(fc.boolean()) });
const sink = section({ type: near(fc.constantFrom("log", "webhook", "nats", "redis", "module", "kafka")), path: text, url: text, secret: text, subject: text, stream: text });

const sections = {
  server: section({ host: text, port: integer, tls: section({ cert: text, key: text }), maxBodyBytes: integer, shutdownTimeoutMs: integer }),
  upstream: section({ retryAfterCapMs: integer, backoffBaseMs: integer, connectionsPerProvider: integer }),
  database: section({ url: text }),
  providers: near(fc.array(provider, { maxLength: 3 })),
  auth: section({ google: section({ audiences: near(fc.array(text, { maxLength: 2 })), certsFile: text, emails: near(fc.array(text)), domains: near(fc.array(text)) }), cors: section({ origins: near(fc.array(text, { maxLength: 2 })) }) }),
  signals: section({ includeBodies: near(fc.boolean()), sinks: near(fc.array(sink, { maxLength: 3 })) }),
  logging: section({ level: near(fc.constantFrom("info", "debug", "silent", "loud")), logPrompt: near(fc.boolean()) }),
};
const configLike = section(sections);
/** One section alone, so that every section's issues come first in the message now and then. */
const oneSection = fc.oneof(...Object.entries(sections).map(([name, value]) => value.map((v) => ({ [name]: v }))));

/** The keys of a ConfigError's first issue path, "server.tls.cert" or "providers[0].name". */
function firstIssuePath(message: string): { keys: string[]; text: string } {
  const issue = message.slice("invalid configuration: ".length);
  const path = issue.slice(0, issue.indexOf(": "));
  return { keys: path === "(top level)" ? [] : path.split(/\.|\[(\d+)\]/).filter(Boolean), text: issue.slice(path.length + 2) };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The issue names a field of the input: every key of its path but the last is there, or an unknown key is quoted. */
function expectNamesAField(input: unknown, message: string): void {
  expect(message.startsWith("invalid configuration: "), message).toBe(true);
  const { keys, text } = firstIssuePath(message);
  if (!isRecord(input)) return; // the top level itself is at fault
  let value: unknown = input;
  for (const key of keys.slice(0, -1)) {
    expect(value !== null && typeof value === "object" && Object.hasOwn(value, key), `${message}: "${key}" is in the input`).toBe(true);
    value = (value as Record<string, unknown>)[key];
  }
  const unknownKey = text.startsWith("Unrecognized key");
  if (keys.length === 0) expect(unknownKey, message).toBe(true);
  if (unknownKey) {
    const holder = keys.reduce<unknown>((object, key) => (object as Record<string, unknown>)[key], input) as object;
    expect(Reflect.ownKeys(holder).some((key) => typeof key === "string" && text.includes(`"${key}"`)), `${message}: an unknown key of the input`).toBe(true);
  }
}

describe("parseConfig", () => {
  it.each([
    ["anything at all", anything],
    ["an object shaped like the configuration", configLike],
    ["one section of the configuration", oneSection],
  ])("given %s, returns a configuration or throws a ConfigError naming the field", (_name, input) => {
    fc.assert(
      fc.property(input, (value) => {
        try {
          parseConfig(value);
        } catch (e) {
          expect(e).toBeInstanceOf(ConfigError);
          expectNamesAField(value, (e as ConfigError).message);
        }
      }),
      { numRuns: 400 },
    );
  });
});

describe("loadConfig", () => {
  const dir = mkdtempSync(join(tmpdir(), "passthrough-config-property-"));
  it("refuses a section that is not a mapping, naming it, whatever the environment overrides", () => {
    const notAMapping = fc.oneof(fc.integer(), fc.boolean(), fc.string({ minLength: 1, maxLength: 6 }), fc.array(fc.integer(), { maxLength: 2 }));
    const env = fc.record({ PASSTHROUGH_PORT: fc.constant("9000"), DATABASE_URL: fc.constant("sqlite::memory:"), PASSTHROUGH_LOG_LEVEL: fc.constant("debug") }, { requiredKeys: [] });
    fc.assert(
      fc.property(fc.constantFrom(...Object.keys(sections).filter((name) => name !== "providers")), notAMapping, env, (name, value, environment) => {
        const file = join(dir, "config.yaml");
        writeFileSync(file, stringify({ [name]: value }));
        expect(() => loadConfig({ file, env: environment })).toThrow(ConfigError);
        expect(() => loadConfig({ file, env: environment })).toThrow(new RegExp(`^invalid configuration: ${name}: `));
      }),
      { numRuns: 60 },
    );
  });
});
