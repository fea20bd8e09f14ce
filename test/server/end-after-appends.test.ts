/**
 * A response whose call appended its lines (the journal's write-ahead line, the log sink's
 * events) in the turn it ended in: its last bytes go only once those are written, on HTTP/1.1
 * and HTTP/2 alike, and meanwhile it counts as ended.
 */
import { closeSync, mkdtempSync, openSync, readFileSync } from "node:fs";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { configSchema } from "../../src/config/schema.js";
import { appendInTurn } from "../../src/durable/turn-appends.js";
import { beforeEnd, type NodeResponse } from "../../src/node-http/response.js";
import { createListener, type Listener } from "../../src/server/listener.js";

const file = join(mkdtempSync(join(tmpdir(), "passthrough-end-")), "appends");
let fd: number;
let listener: Listener;
let url: string;
/**
 * What each response saw: whether Node's own response (HTTP/1.1) or stream (HTTP/2) had ended
 * when its line was written, whether the line was on disk when it finished, and how it stood
 * right after `end`.
 */
interface Seen {
  endedBeforeWritten: boolean | undefined;
  onDiskAtFinish: boolean;
  endedAtOnce: boolean;
  secondEndIgnored: boolean;
}
const seen = new Map<string, Seen>();
const expected: Seen = { endedBeforeWritten: false, onDiskAtFinish: true, endedAtOnce: true, secondEndIgnored: true };
/** Node's own state, below the gateway's `writableEnded`. */
const nodeEnded = (res: NodeResponse) => ("stream" in res ? res.stream.writableEnded : res.finished);

beforeAll(async () => {
  fd = openSync(file, "a");
  listener = createListener({
    limits: configSchema.parse({}).server,
    handler: (req, res: NodeResponse) => {
      const id = new URL(req.url ?? "/", "http://x").searchParams.get("id")!;
      const line = `${id}\n`;
      beforeEnd(res, () => appendInTurn(fd, line, () => (seen.get(id)!.endedBeforeWritten = nodeEnded(res))));
      res.once("finish", () => {
        const record = seen.get(id)!;
        record.onDiskAtFinish = readFileSync(file, "utf8").includes(line);
      });
      seen.set(id, { endedBeforeWritten: undefined, onDiskAtFinish: false, endedAtOnce: false, secondEndIgnored: false });
      res.setHeader("content-type", "text/plain");
      res.end(`answer ${id}`);
      const record = seen.get(id)!;
      record.endedAtOnce = res.writableEnded;
      // A second end while the first waits must not end the response early, or twice.
      res.end("not this");
      record.secondEndIgnored = true;
    },
  });
  await new Promise<void>((resolve) => listener.server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(listener.server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  listener.destroyConnections();
  await new Promise((resolve) => listener.server.close(resolve));
  closeSync(fd);
});

describe("a response whose call appended to a local file this turn", () => {
  it("over HTTP/1.1, ends only after the append is written, counts as ended at once, and ignores a second end", async () => {
    const answers = await Promise.all(["a", "b", "c"].map(async (id) => (await fetch(`${url}/?id=${id}`)).text()));
    expect(answers).toEqual(["answer a", "answer b", "answer c"]);
    for (const id of ["a", "b", "c"]) expect(seen.get(id)).toEqual(expected);
  });

  it("over HTTP/2, likewise", async () => {
    const session = http2.connect(url);
    try {
      const answer = (id: string) =>
        new Promise<string>((resolve, reject) => {
          const stream = session.request({ ":path": `/?id=${id}` });
          let text = "";
          stream.setEncoding("utf8");
          stream.on("data", (chunk: string) => (text += chunk));
          stream.on("end", () => resolve(text));
          stream.on("error", reject);
        });
      expect(await Promise.all(["d", "e"].map(answer))).toEqual(["answer d", "answer e"]);
    } finally {
      session.close();
    }
    for (const id of ["d", "e"]) expect(seen.get(id)).toEqual(expected);
  });
});
