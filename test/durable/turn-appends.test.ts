import { closeSync, mkdtempSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { afterAppends, appendInTurn, flushAppends } from "../../src/durable/turn-appends.js";

const endOfTurn = () => new Promise(setImmediate);
const opened: number[] = [];
afterEach(() => {
  for (const fd of opened.splice(0)) closeSync(fd);
});

/** A new file, opened for appending (or, with `readOnly`, for reading only, so that writes to it fail). */
function newFile(readOnly = false): { path: string; fd: number } {
  const path = join(mkdtempSync(join(tmpdir(), "passthrough-turn-")), "file");
  writeFileSync(path, "");
  const fd = openSync(path, readOnly ? "r" : "a");
  opened.push(fd);
  return { path, fd };
}

describe("appends grouped by turn", () => {
  it("writes a turn's appends to a file at the turn's end, in order, and tells each owner once", async () => {
    const { path, fd } = newFile();
    const told: unknown[] = [];
    const owner = (error?: unknown) => told.push(error ?? "written");
    appendInTurn(fd, "a\n", owner);
    appendInTurn(fd, "b\n", owner);
    appendInTurn(fd, "c\n", (error) => told.push(error ?? "written too"));
    expect(readFileSync(path, "utf8")).toBe("");
    await endOfTurn();
    expect(readFileSync(path, "utf8")).toBe("a\nb\nc\n");
    expect(told).toEqual(["written", "written too"]);
  });

  it("runs what waits for the appends after they are written, in order; nothing waits in a turn without appends", async () => {
    expect(afterAppends(() => {})).toBe(false);
    const { path, fd } = newFile();
    const seen: string[] = [];
    appendInTurn(fd, "entry\n", () => {});
    expect(afterAppends(() => seen.push(`first: ${readFileSync(path, "utf8")}`))).toBe(true);
    expect(afterAppends(() => seen.push("second"))).toBe(true);
    expect(seen).toEqual([]);
    await endOfTurn();
    expect(seen).toEqual(["first: entry\n", "second"]);
    expect(afterAppends(() => {})).toBe(false);
  });

  it("writes one file's appends at once when its owner flushes them, the others' at the turn's end", async () => {
    const one = newFile();
    const other = newFile();
    appendInTurn(one.fd, "one\n", () => {});
    appendInTurn(other.fd, "other\n", () => {});
    flushAppends(one.fd);
    expect(readFileSync(one.path, "utf8")).toBe("one\n");
    expect(readFileSync(other.path, "utf8")).toBe("");
    await endOfTurn();
    expect(readFileSync(one.path, "utf8")).toBe("one\n");
    expect(readFileSync(other.path, "utf8")).toBe("other\n");
  });

  it("tells the owner of a file whose write fails the error, writes the other files, and still runs what waits", async () => {
    const broken = newFile(true);
    const fine = newFile();
    const told: unknown[] = [];
    appendInTurn(broken.fd, "lost\n", (error) => told.push(error));
    appendInTurn(fine.fd, "kept\n", (error) => told.push(error ?? "written"));
    let ran = false;
    afterAppends(() => (ran = true));
    await endOfTurn();
    expect(told[0]).toMatchObject({ code: "EBADF" });
    expect(told[1]).toBe("written");
    expect(readFileSync(fine.path, "utf8")).toBe("kept\n");
    expect(ran).toBe(true);
  });
});
