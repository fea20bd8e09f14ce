import { isAbsolute, resolve } from "node:path";
import { ConfigError } from "../config/load.js";
import type { Store } from "./store.js";

export interface OpenStoreOptions {
  /** PostgreSQL only: the schema that holds the tables (`database.schema`). Default `public`. */
  schema?: string;
  /** What a relative `sqlite:` path is relative to. Default: the working directory. */
  cwd?: string;
}

/**
 * Opens the store that `database.url` names and applies its migrations: `sqlite:PATH` (relative
 * or absolute; `sqlite::memory:` for a private one) or `postgres://…` / `postgresql://…`.
 * Every entry point (the server, each CLI command) opens the store through here. Only the
 * driver the URL names is loaded, so a command starts without the other.
 */
export async function openStore(url: string, options: OpenStoreOptions = {}): Promise<Store> {
  if (url.startsWith("sqlite:")) {
    const path = url.slice("sqlite:".length);
    if (path === "") throw new ConfigError(`database.url: "sqlite:" needs a path, e.g. sqlite:./data/passthrough.db`);
    const { openSqliteStore } = await import("./sqlite.js");
    return openSqliteStore({ path: path === ":memory:" || isAbsolute(path) ? path : resolve(options.cwd ?? process.cwd(), path) });
  }
  if (/^postgres(ql)?:\/\//.test(url)) {
    const { openPostgresStore } = await import("./postgres.js");
    return openPostgresStore({ url, schema: options.schema });
  }
  // Only the scheme is named: the rest of a URL may hold a password.
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:/.exec(url)?.[0];
  throw new ConfigError(
    `database.url: ${scheme ? `"${scheme}" is not a supported scheme` : "not a URL"}; use sqlite:PATH or postgres://USER@HOST:PORT/DATABASE`,
  );
}
