import { Code, ConnectError } from "@connectrpc/connect";
import { inspect } from "node:util";
import { describe, expect, it } from "vitest";
import { ConfigError } from "../../src/config/load.js";
import { parseConfig } from "../../src/config/load.js";
import { createProviderRegistry } from "../../src/providers/registry.js";

/** The configuration's defaults for providers that set no timeout or retries of their own. */
const defaults = parseConfig({}).upstream;

const names = (env: NodeJS.ProcessEnv, configured = []) => createProviderRegistry(configured, env, defaults).list().map((p) => p.name);

describe("the provider registry", () => {
  it.each([
    ["OPENAI_API_KEY", "openai"],
    ["GEMINI_API_KEY", "googleai"],
    ["ANTHROPIC_API_KEY", "anthropic"],
    ["MISTRAL_API_KEY", "mistral"],
    ["COHERE_API_KEY", "cohere"],
    ["FIREWORKS_API_KEY", "fireworks"],
    ["TOGETHER_API_KEY", "togetherai"],
    ["LLAMA_API_KEY", "metaai"],
    ["DEEPSEEK_API_KEY", "deepseek"],
    ["GROQ_API_KEY", "groq"],
  ])("enables the built-in provider when %s is set (%s)", (variable, name) => {
    expect(names({})).not.toContain(name);
    expect(names({ [variable]: "k" })).toContain(name);
  });

  it("always enables ollama, which needs no key, and sends it no authorization", () => {
    const ollama = createProviderRegistry([], {}, defaults).resolve("ollama");
    expect(ollama.origin).toBe("http://127.0.0.1:11434");
    expect(ollama.completionsPath).toBe("/v1/chat/completions");
    expect(ollama.credential.authorize()).toEqual({});
  });

  it("enables googlevertex with GOOGLE_CLOUD_PROJECT, in GOOGLE_CLOUD_LOCATION", () => {
    const vertex = createProviderRegistry([], { GOOGLE_CLOUD_PROJECT: "proj", GOOGLE_CLOUD_LOCATION: "europe-west4" }, defaults).resolve("googlevertex");
    expect(vertex.origin).toBe("https://europe-west4-aiplatform.googleapis.com");
    expect(vertex.completionsPath).toBe("/v1/projects/proj/locations/europe-west4/endpoints/openapi/chat/completions");
    expect(vertex.credential.secrets).toEqual([]);
  });

  it("authenticates with the key from the environment, as a Bearer token", () => {
    const openai = createProviderRegistry([], { OPENAI_API_KEY: "sk-1" }, defaults).resolve("openai");
    expect(openai.credential.authorize()).toEqual({ authorization: "Bearer sk-1" });
    expect(openai.credential.secrets).toEqual(["sk-1"]);
    expect(JSON.stringify(openai)).not.toContain("sk-1");
    expect(inspect(openai, { depth: 5, showHidden: false })).not.toContain("sk-1");
  });

  it("lets the configuration override a built-in field by field and disable one", () => {
    const registry = createProviderRegistry(
      [
        { name: "openai", baseUrl: "http://127.0.0.1:9000/v1", timeoutMs: 5000 },
        { name: "groq", enabled: false },
      ],
      { OPENAI_API_KEY: "sk-1", GROQ_API_KEY: "g" }, defaults);
    const openai = registry.resolve("openai");
    expect(openai.origin).toBe("http://127.0.0.1:9000");
    expect(openai.timeoutMs).toBe(5000);
    expect(openai.credential.authorize()).toEqual({ authorization: "Bearer sk-1" });
    expect(registry.list().map((p) => p.name)).not.toContain("groq");
  });

  it.each([
    ["My-Provider", "my_provider"],
    ["MY PROVIDER", "my_provider"],
    ["my_provider", "my_provider"],
  ])("normalizes %s to %s", (given, expected) => {
    const registry = createProviderRegistry([{ name: "my_provider", baseUrl: "http://127.0.0.1:1/v1" }], {}, defaults);
    expect(registry.resolve(given).name).toBe(expected);
  });

  it("answers NOT_FOUND for an unknown or disabled provider, without echoing control characters", () => {
    const registry = createProviderRegistry([], {}, defaults);
    const error = (() => {
      try {
        registry.resolve("open\nai");
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ConnectError);
    expect((error as ConnectError).code).toBe(Code.NotFound);
    expect((error as ConnectError).rawMessage).not.toContain("\n");
    expect(() => registry.resolve("openai")).toThrow(/not configured or not enabled/);
  });

  it("refuses a configured provider without baseUrl, or enabled without its key, naming the field", () => {
    expect(() => createProviderRegistry([{ name: "mine" }], {}, defaults)).toThrow(ConfigError);
    expect(() => createProviderRegistry([{ name: "mine" }], {}, defaults)).toThrow("providers[0].baseUrl");
    expect(() => createProviderRegistry([{ name: "x", baseUrl: "http://h/v1", apiKeyEnv: "X_KEY", enabled: true }], {}, defaults)).toThrow("providers[0].apiKeyEnv");
  });
});
