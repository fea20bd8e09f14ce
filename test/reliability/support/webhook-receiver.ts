import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { SignalEvent } from "../../../src/signals/sink.js";

/** A real HTTP server standing in for a webhook sink's receiver: it keeps each batch, or answers 503 while `down`. */
export interface WebhookReceiver {
  readonly url: string;
  /** The batches it accepted, in arrival order. */
  readonly batches: SignalEvent[][];
  down: boolean;
  close(): Promise<void>;
}

/** A webhook sink's configuration pointing at the receiver, with a Standard Webhooks secret. */
export const webhookSink = (receiver: WebhookReceiver) => ({ type: "webhook" as const, url: receiver.url, secret: "whsec_c2hvcnQgdGVzdCBzZWNyZXQ=" });

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const batches: SignalEvent[][] = [];
  const receiver = { batches, down: false } as WebhookReceiver & { url: string };
  const server = createServer((req, res) => {
    const body: Buffer[] = [];
    req.on("data", (chunk: Buffer) => body.push(chunk));
    req.on("end", () => {
      if (receiver.down) return void res.writeHead(503).end();
      batches.push(JSON.parse(Buffer.concat(body).toString("utf8")) as SignalEvent[]);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
  receiver.close = () => new Promise((resolve) => server.close(() => resolve()));
  return receiver;
}
