import { PassThrough } from "node:stream";
import { describe, expect, it } from "vitest";
import { SseEventTooLargeError } from "../../src/providers/sse-parser.js";
import { SseRelay } from "../../src/service/sse-relay.js";

const text = (bytes: Uint8Array | undefined) => Buffer.from(bytes ?? []).toString();
const tick = () => new Promise((resolve) => setImmediate(resolve));

describe("SseRelay", () => {
  it("gives whole blocks, in order, however the body is split, then ends", async () => {
    const body = new PassThrough();
    const relay = new SseRelay(body, 1024, () => "error\n\n");
    body.write("data: 1\n");
    body.write("\ndata: 2\n\nda");
    body.end("ta: [DONE]\n\n");
    const pieces: string[] = [];
    for await (const block of relay) pieces.push(text(block));
    // The blocks a chunk completes come together; none is ever cut.
    expect(pieces).toEqual(["data: 1\n\ndata: 2\n\n", "data: [DONE]\n\n"]);
  });

  it("pauses the body while a block waits unread, and resumes it once read", async () => {
    const body = new PassThrough();
    const relay = new SseRelay(body, 1024, () => "error\n\n");
    body.write("data: 1\n\n");
    await tick();
    expect(body.isPaused()).toBe(true);
    expect(text((await relay.next()).value)).toBe("data: 1\n\n");
    expect(body.isPaused()).toBe(false);
  });

  it("ends a body broken midway with the error bytes after the whole blocks", async () => {
    const body = new PassThrough();
    const relay = new SseRelay(body, 1024, (error) => `event: error\ndata: ${(error as Error).message}\n\n`);
    body.write("data: 1\n\ndata: half");
    await tick();
    body.destroy(new Error("reset"));
    const pieces: string[] = [];
    for await (const block of relay) pieces.push(text(block));
    expect(pieces).toEqual(["data: 1\n\n", "event: error\ndata: reset\n\n"]);
  });

  it("ends a stream whose event passes the bound after the whole blocks before it, and destroys the body", async () => {
    const body = new PassThrough();
    const errors: unknown[] = [];
    const relay = new SseRelay(body, 16, (error) => (errors.push(error), "event: error\n\n"));
    body.write("data: 1\n\ndata: 2\n\ndata: 0123456789abc");
    const pieces: string[] = [];
    for await (const block of relay) pieces.push(text(block));
    expect(pieces).toEqual(["data: 1\n\ndata: 2\n\n", "event: error\n\n"]);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(SseEventTooLargeError);
    expect(body.destroyed).toBe(true);
  });

  it("destroys the body when the reader stops (the caller went away)", async () => {
    const body = new PassThrough();
    const relay = new SseRelay(body, 1024, () => "error\n\n");
    const pending = relay.next();
    await relay.return();
    expect(body.destroyed).toBe(true);
    expect(await pending).toEqual({ value: undefined, done: true });
  });
});
