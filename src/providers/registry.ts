import { Code, ConnectError } from "@connectrpc/connect";
import { ConfigError } from "../config/load.js";
import type { ProviderConfig } from "../config/schema.js";
import { Secret } from "../config/secret.js";
import { builtinProviders } from "./builtins.js";
import { createApiKeyCredential, createGoogleCredential, noCredential } from "./credentials.js";
import { normalizeProviderName, type Credential, type Provider } from "./provider.js";


export interface ProviderRegistry {
  /** The enabled provider of that name (normalized first); NOT_FOUND otherwise. */
  resolve(name: string): Provider;
  /** Every enabled provider. */
  list(): readonly Provider[];
}

/**
 * Builds the enabled providers from the built-in table and the configuration file (a
 * configured provider overrides the built-in of the same name, field by field). Keys are read
 * from `env` here, once; a provider whose key is missing is disabled unless the configuration
 * says `enabled: true`, which is then an error.
 */
export function createProviderRegistry(
  configured: readonly ProviderConfig[],
  env: NodeJS.ProcessEnv,
  defaults: { timeoutMs: number; retries: number },
): ProviderRegistry {
  const merged = new Map<string, ProviderConfig & { builtin: boolean; index?: number }>();
  for (const builtin of builtinProviders(env)) merged.set(builtin.name, { ...builtin, builtin: true });
  configured.forEach((entry, index) => {
    const base = merged.get(entry.name);
    merged.set(entry.name, { ...base, ...withoutUndefined(entry), name: entry.name, builtin: base?.builtin ?? false, index });
  });

  const providers = new Map<string, Provider>();
  for (const entry of merged.values()) {
    const field = (name: string) => `providers[${entry.index}].${name}`;
    if (!entry.baseUrl) throw new ConfigError(`invalid configuration: ${field("baseUrl")}: required for a provider that is not built in`);
    const credential = resolveCredential(entry, env);
    const enabled = entry.enabled ?? credential !== undefined;
    if (!enabled) continue;
    if (!credential) {
      throw new ConfigError(`invalid configuration: ${field("apiKeyEnv")}: environment variable ${entry.apiKeyEnv} is not set`);
    }
    const url = new URL(entry.baseUrl);
    providers.set(entry.name, {
      name: entry.name,
      origin: url.origin,
      completionsPath: `${url.pathname.replace(/\/+$/, "")}/chat/completions`,
      timeoutMs: entry.timeoutMs ?? defaults.timeoutMs,
      retries: entry.retries ?? defaults.retries,
      headers: lowerCaseKeys(entry.headers ?? {}),
      credential,
    });
  }

  const list = [...providers.values()];
  return {
    resolve(name) {
      const provider = providers.get(normalizeProviderName(name));
      if (!provider) {
        throw new ConnectError(`provider "${printable(name)}" is not configured or not enabled`, Code.NotFound);
      }
      return provider;
    },
    list: () => list,
  };
}

/** The credential, or undefined when its key is missing (the provider is then disabled). */
function resolveCredential(entry: ProviderConfig, env: NodeJS.ProcessEnv): Credential | undefined {
  const kind = entry.credential ?? (entry.apiKeyEnv ? "apiKey" : "none");
  if (kind === "none") return noCredential;
  if (kind === "google") return createGoogleCredential();
  const key = entry.apiKeyEnv ? env[entry.apiKeyEnv] : undefined;
  return key ? createApiKeyCredential(new Secret(key)) : undefined;
}

function withoutUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function lowerCaseKeys(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]));
}

/** A caller-supplied name, shortened and stripped of control characters for an error message. */
function printable(name: string): string {
  const clean = name.replace(/[\u0000-\u001f\u007f]/g, "?");
  return clean.length > 64 ? `${clean.slice(0, 64)}…` : clean;
}
