import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);
const bin = join(import.meta.dirname, "../../bin/passthrough.js");
const newSpaceMb = 'const v8 = require("node:v8"); console.log(v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space").space_size / 1048576)';

describe("the passthrough executable", () => {
  it("runs through its own #! line, which starts node's young generation at its full size", async () => {
    const help = await run(bin, ["--help"]);
    expect(`${help.stdout}${help.stderr}`).toMatch(/^Usage: passthrough <command>/);
    const shebang = readFileSync(bin, "utf8").split("\n", 1)[0];
    expect(shebang).toMatch(/^#!\/usr\/bin\/env -S node /);
    // The same interpreter line, asked how large its new space is before anything was allocated.
    const [, ...interpreter] = shebang.slice(2).split(" ");
    const started = await run("/usr/bin/env", [...interpreter, "-e", newSpaceMb]);
    const plain = await run(process.execPath, ["-e", newSpaceMb]);
    expect(Number(started.stdout)).toBe(16);
    expect(Number(plain.stdout)).toBeLessThan(16);
  });

  it("is started by npm start with the node options of that line, where env -S may be missing", () => {
    const options = readFileSync(bin, "utf8").split("\n", 1)[0].replace(/^#!\/usr\/bin\/env -S node /, "");
    const { scripts } = JSON.parse(readFileSync(join(import.meta.dirname, "../../package.json"), "utf8")) as { scripts: Record<string, string> };
    expect(scripts.start).toBe(`node ${options} bin/passthrough.js serve`);
  });
});
