/** Raw-socket clients for the abuse suites: what a misbehaving peer sends, and what it gets back. */
import * as http from "node:http";
import * as https from "node:https";
import * as net from "node:net";
import { startFakeProvider, type FakeProvider } from "../../support/fake-provider.js";
import { newApiKey } from "../../../src/auth/api-keys.js";
import { spawnGateway, type ChildGateway } from "./child-gateway.js";
import type { ConfigInput } from "../../../src/config/schema.js";

export interface RawExchange {
  /** Everything the server sent, as Latin-1. */
  received: string;
  /** The status of the first response, if one came. */
  status?: number;
  /** Header names are lower-case. */
  headers: Record<string, string>;
  body: string;
  /** Milliseconds from connect until the server closed the connection; undefined if it had not by `limitMs`. */
  closedAfterMs?: number;
}

export interface RawOptions {
  /** Pause between two writes; default 100 ms. */
  everyMs?: number;
  /** Give up (and destroy the socket) after this long; default 10 s. */
  limitMs?: number;
  /** Keep writing the steps again and again (a dribble that never ends). */
  repeatLast?: boolean;
}

/** Connects, writes each step `everyMs` apart, and collects what the server sends until it closes. */
export async function rawExchange(url: string, steps: readonly (string | Buffer)[], options: RawOptions = {}): Promise<RawExchange> {
  const { everyMs = 100, limitMs = 10_000, repeatLast = false } = options;
  const { hostname, port } = new URL(url);
  const socket = net.connect(Number(port), hostname);
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  const started = Date.now();
  const chunks: Buffer[] = [];
  socket.on("data", (chunk: Buffer) => chunks.push(chunk));
  socket.on("error", () => {});
  let index = 0;
  const write = () => {
    if (socket.destroyed || socket.writableEnded) return;
    const step = steps[Math.min(index, steps.length - 1)];
    if (step === undefined || (index >= steps.length && !repeatLast)) return;
    index++;
    socket.write(step);
  };
  write();
  const writer = setInterval(write, everyMs);
  const closedAfterMs = await new Promise<number | undefined>((resolve) => {
    const limit = setTimeout(() => resolve(undefined), limitMs);
    socket.once("close", () => {
      clearTimeout(limit);
      resolve(Date.now() - started);
    });
  });
  clearInterval(writer);
  socket.destroy();
  return { ...parseResponse(Buffer.concat(chunks).toString("latin1")), closedAfterMs };
}

export function parseResponse(received: string): Omit<RawExchange, "closedAfterMs"> {
  const end = received.indexOf("\r\n\r\n");
  const head = end < 0 ? received : received.slice(0, end);
  const [statusLine, ...lines] = head.split("\r\n");
  const match = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? "");
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { received, status: match ? Number(match[1]) : undefined, headers, body: end < 0 ? "" : received.slice(end + 4) };
}

/**
 * A REST passthrough call that the fake provider answers, on a connection of its own (so that
 * no keep-alive connection closed by the gateway can fail it); resolves with its status. Over
 * https the test certificate is not verified: the call checks the gateway, not the certificate.
 */
/** The key every abuse target's store holds, known before it starts so that raw requests can carry it. */
export const ABUSE_KEY = newApiKey();
/** The authorization header line of ABUSE_KEY, for raw requests. */
export const AUTHORIZATION = `authorization: Bearer ${ABUSE_KEY.key.reveal()}`;

export function normalCall(url: string, payload: object = { model: "m", messages: [{ role: "user", content: "hi" }] }): Promise<number> {
  const body = JSON.stringify(payload);
  return new Promise((resolve, reject) => {
    const request = url.startsWith("https:") ? https.request : http.request;
    const req = request(
      `${url}/api/v1/prompts/passthrough/local/`,
      { method: "POST", agent: false, timeout: 5000, rejectUnauthorized: false, headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body), authorization: `Bearer ${ABUSE_KEY.key.reveal()}` } },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error("normal call timed out")));
    req.on("error", reject);
    req.end(body);
  });
}

export interface AbuseTarget {
  provider: FakeProvider;
  gateway: ChildGateway;
  close(): Promise<void>;
}

/**
 * A fake provider and a gateway in a child process in front of it, with these `server`
 * settings, warmed up by a unary call and a short stream: a first call loads and compiles code,
 * and its memory would be taken for the abuse's.
 */
export async function startAbuseTarget(server: NonNullable<ConfigInput["server"]>): Promise<AbuseTarget> {
  const provider = await startFakeProvider();
  const gateway = await spawnGateway({ server, providers: [{ name: "local", baseUrl: provider.url, retries: 0 }] }, {}, ABUSE_KEY);
  await normalCall(gateway.url);
  await normalCall(gateway.url, { model: "m", stream: true });
  provider.clear();
  return {
    provider,
    gateway,
    async close() {
      await gateway.stop();
      await provider.close();
    },
  };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
