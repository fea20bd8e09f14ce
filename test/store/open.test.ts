import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config/load.js";
import { openStore } from "../../src/store/open.js";

const dir = mkdtempSync(join(tmpdir(), "passthrough-open-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("openStore", () => {
  it.each([
    { url: "sqlite:relative/dir/x.db", file: "relative/dir/x.db" },
    { url: `sqlite:${join(dir, "absolute.db")}`, file: join(dir, "absolute.db") },
  ])("opens $url", async ({ url, file }) => {
    const store = await openStore(url, { cwd: dir });
    await store.close();
    expect(existsSync(file.startsWith("/") ? file : join(dir, file))).toBe(true);
  });

  it("opens a private in-memory database", async () => {
    const store = await openStore("sqlite::memory:");
    expect(await store.countKeys()).toBe(0);
    await store.close();
  });

  it.each([
    { url: "mysql://root:hunter2@db/x", says: '"mysql:" is not a supported scheme' },
    { url: "sqlite:", says: "needs a path" },
    { url: "just words", says: "not a URL" },
  ])("refuses $url, naming database.url and never the password", async ({ url, says }) => {
    const error = (await openStore(url).catch((e: unknown) => e)) as Error;
    expect(error.name).toBe("ConfigError");
    expect(error.message).toContain("database.url");
    expect(error.message).toContain(says);
    expect(error.message).not.toContain("hunter2");
  });
});

describe("database.schema", () => {
  it("is a plain identifier, and anything else is refused naming the field", () => {
    expect(parseConfig({ database: { url: "postgres://h/d", schema: "tenant_1" } }).database).toEqual({ url: "postgres://h/d", schema: "tenant_1" });
    expect(() => parseConfig({ database: { schema: 'a"b' } })).toThrow("database.schema");
  });
});
