// The soak's calls, one function per shape (REST or Connect over HTTP/1.1, REST SSE, gRPC unary and
// server stream, an idle raw socket). Each returns an Observation: a short outcome label that the
// mix (soak-mix.ts) compares with the documented ones, and the contract checks it failed.
import * as grpc from "@grpc/grpc-js";
import net from "node:net";
import type { Readable } from "node:stream";
import { errors, type Dispatcher, type Pool } from "undici";

/** What one call came to: `outcome` is compared with the kind's expected labels. */
export interface Observation {
  outcome: string;
  /** Status, headers or body excerpt, kept for the report's examples of unexpected outcomes. */
  detail?: string;
  /** SPEC rules the answer broke although its status was right (no-cache headers, journal key, leaks). */
  violations?: string[];
}

export interface SoakClients {
  pool: Pool;
  grpc: grpc.Client;
  /** authorization plus content-type, for REST and Connect. */
  jsonHeaders: Record<string, string>;
  metadata: grpc.Metadata;
  port: number;
  /** Every call is bounded by this, whatever it waits for. */
  callTimeoutMs: number;
}

/** A stack frame, a source path or a file:line in an error message (SPEC section 8: never). */
const leak = /\n\s+at |\((?:file:\/\/)?\/[^)]*:\d+:\d+\)|\/(?:src|dist|node_modules)\/|\.[cm]?[jt]s:\d+/;

const excerpt = (text: string, length = 240): string => (text.length > length ? `${text.slice(0, length)}…` : text);

function errorLabel(error: unknown): string {
  if (error instanceof errors.HeadersTimeoutError || error instanceof errors.BodyTimeoutError) return "client timeout";
  const code = (error as { code?: string }).code;
  return `error ${code ?? (error as Error).name ?? "unknown"}`;
}

function errorDetail(error: unknown): string {
  const { message, cause } = error as { message?: string; cause?: { message?: string } };
  return excerpt(`${message ?? String(error)}${cause?.message ? ` (cause: ${cause.message})` : ""}`);
}

/** SPEC sections 3 and 9: every answer carries the no-cache headers and the call's journal key. */
function headerViolations(headers: Dispatcher.ResponseData["headers"]): string[] {
  const found: string[] = [];
  if (!String(headers["cache-control"] ?? "").includes("no-store")) found.push("no `Cache-Control: no-store`");
  if (!headers["x-journal-key"]) found.push("no `x-journal-key`");
  return found;
}

/** `{status} {code}` from a REST envelope or a Connect error body; the raw status when it is neither. */
function errorBodyLabel(status: number, text: string, protocol: "rest" | "connect", violations: string[]): string {
  let parsed: { code?: unknown; message?: unknown; error?: { code?: unknown; status?: unknown; description?: unknown } } | undefined;
  try {
    parsed = JSON.parse(text) as typeof parsed;
  } catch {
    return `${status} (body not JSON)`;
  }
  const code = protocol === "rest" ? parsed?.error?.code : parsed?.code;
  const message = protocol === "rest" ? parsed?.error?.description : parsed?.message;
  if (typeof code !== "string") return `${status} (no ${protocol === "rest" ? "error envelope" : "Connect error"})`;
  if (protocol === "rest" && parsed?.error?.status !== status) violations.push(`envelope status ${String(parsed?.error?.status)} ≠ HTTP ${status}`);
  if (typeof message === "string" && leak.test(message)) violations.push("stack trace or file path in the error");
  return `${status} ${code}`;
}

export interface HttpCallOptions {
  path: string;
  /** A function makes a fresh stream per call, sent without a content-length (chunked). */
  body: string | Buffer | (() => Readable);
  headers?: Record<string, string>;
  protocol: "rest" | "connect";
  /** Hang up this long after sending (the answer must not have come yet). */
  hangUpAfterMs?: number;
  /** A header the answer must carry (the relayed `retry-after` of a 429). */
  expectHeader?: string;
  /** Extra check of a 200's parsed body; returns what is wrong, or undefined. */
  checkOk?: (body: Record<string, unknown>) => string | undefined;
}

/** A unary REST or Connect call: `200`, `{status} {code}`, `hung up`, or what went wrong. */
export async function httpUnary(clients: SoakClients, options: HttpCallOptions): Promise<Observation> {
  const abort = new AbortController();
  const hangUp = options.hangUpAfterMs === undefined ? undefined : setTimeout(() => abort.abort(), options.hangUpAfterMs);
  try {
    const body = typeof options.body === "function" ? options.body() : options.body;
    const response = await clients.pool.request({
      path: options.path,
      method: "POST",
      headers: { ...clients.jsonHeaders, ...options.headers },
      body,
      signal: abort.signal,
      headersTimeout: clients.callTimeoutMs,
      bodyTimeout: clients.callTimeoutMs,
    });
    const text = await response.body.text();
    const violations = headerViolations(response.headers);
    if (options.expectHeader && response.headers[options.expectHeader] === undefined) violations.push(`no \`${options.expectHeader}\``);
    const detail = `HTTP ${response.statusCode} ${excerpt(text)}`;
    if (response.statusCode !== 200) return { outcome: errorBodyLabel(response.statusCode, text, options.protocol, violations), detail, violations };
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return { outcome: "200 (body not JSON)", detail, violations };
    }
    const wrong = typeof parsed === "object" && parsed ? options.checkOk?.(parsed as Record<string, unknown>) : "not an object";
    return { outcome: wrong ? `200 (${wrong})` : options.hangUpAfterMs === undefined ? "200" : "200 before the hang-up", detail, violations };
  } catch (error) {
    if (abort.signal.aborted) return { outcome: "hung up" };
    return { outcome: errorLabel(error), detail: errorDetail(error) };
  } finally {
    clearTimeout(hangUp);
  }
}

/**
 * A REST SSE stream: `200 [DONE]`, `200 event: error {code}` (a provider that broke off after the
 * stream began), `hung up after the first event`, or what went wrong.
 */
export async function restStream(clients: SoakClients, path: string, body: string, hangUpAfterFirstEvent: boolean): Promise<Observation> {
  const abort = new AbortController();
  let events = 0;
  try {
    const response = await clients.pool.request({
      path,
      method: "POST",
      headers: clients.jsonHeaders,
      body,
      signal: abort.signal,
      headersTimeout: clients.callTimeoutMs,
      bodyTimeout: clients.callTimeoutMs,
    });
    const violations = headerViolations(response.headers);
    const contentType = String(response.headers["content-type"] ?? "");
    if (response.statusCode !== 200 || !contentType.startsWith("text/event-stream")) {
      const text = await response.body.text();
      return { outcome: response.statusCode === 200 ? `200 ${contentType}` : errorBodyLabel(response.statusCode, text, "rest", violations), detail: `HTTP ${response.statusCode} ${excerpt(text)}`, violations };
    }
    let text = "";
    for await (const chunk of response.body) {
      text += (chunk as Buffer).toString();
      events = text.split("\n\n").filter((block) => block.startsWith("data:")).length;
      if (hangUpAfterFirstEvent && events > 0) {
        abort.abort();
        break;
      }
    }
    if (hangUpAfterFirstEvent && abort.signal.aborted) return { outcome: "hung up after the first event", violations };
    if (text.endsWith("data: [DONE]\n\n")) return { outcome: "200 [DONE]", violations };
    const errorEvent = /event: error\ndata: (.*)\n\n$/.exec(text);
    if (errorEvent) {
      const label = errorBodyLabel(200, errorEvent[1], "rest", []);
      return { outcome: `200 event: error ${label.split(" ").slice(1).join(" ")}`, detail: excerpt(errorEvent[1]), violations };
    }
    return { outcome: "200 (stream ended without [DONE] or an error event)", detail: excerpt(text.slice(-240)), violations };
  } catch (error) {
    if (hangUpAfterFirstEvent && abort.signal.aborted) return { outcome: "hung up after the first event" };
    return { outcome: errorLabel(error), detail: `${events} events, then ${errorDetail(error)}` };
  }
}

const identity = (bytes: Buffer): Buffer => bytes;

function grpcLabel(code: grpc.status): string {
  return grpc.status[code] ?? String(code);
}

function grpcViolations(details: string, headers: grpc.Metadata | undefined, trailers: grpc.Metadata | undefined, journalKey = true): string[] {
  const found: string[] = [];
  if (leak.test(details)) found.push("stack trace or file path in the error");
  if (journalKey && !headers?.get("x-journal-key").length && !trailers?.get("x-journal-key").length) found.push("no `x-journal-key`");
  return found;
}

/**
 * gRPC Passthrough: `OK` (with a body), a status name, or `OK (no body)`. With a short deadline the
 * client may end the call itself, without the gateway's headers: the journal key is not checked then.
 */
export function grpcUnary(clients: SoakClients, path: string, request: Buffer, deadlineMs?: number): Promise<Observation> {
  return new Promise((resolve) => {
    let headers: grpc.Metadata | undefined;
    const call = clients.grpc.makeUnaryRequest(path, identity, identity, request, clients.metadata, { deadline: Date.now() + (deadlineMs ?? clients.callTimeoutMs) }, (error, answer) => {
      if (error) {
        const violations = grpcViolations(error.details, headers, error.metadata, deadlineMs === undefined);
        resolve({ outcome: grpcLabel(error.code), detail: excerpt(`${grpcLabel(error.code)}: ${error.details}`), violations });
        return;
      }
      // Field 1 (body), length-delimited and not empty.
      const hasBody = answer !== undefined && answer.length > 2 && answer[0] === 0x0a && answer[1] !== 0;
      resolve({ outcome: hasBody ? "OK" : "OK (no body)", violations: grpcViolations("", headers, undefined) });
    });
    call.on("metadata", (metadata: grpc.Metadata) => void (headers = metadata));
  });
}

/** gRPC PassthroughStream: `OK` after at least one message, a status name, or `CANCELLED` when we cancel after the first. */
export function grpcStream(clients: SoakClients, path: string, request: Buffer, cancelAfterFirst: boolean): Promise<Observation> {
  return new Promise((resolve) => {
    let messages = 0;
    let headers: grpc.Metadata | undefined;
    const call = clients.grpc.makeServerStreamRequest(path, identity, identity, request, clients.metadata, { deadline: Date.now() + clients.callTimeoutMs });
    call.on("metadata", (metadata: grpc.Metadata) => void (headers = metadata));
    call.on("data", () => {
      if (++messages === 1 && cancelAfterFirst) call.cancel();
    });
    call.on("error", () => undefined); // the status event below carries it
    call.on("status", (status: grpc.StatusObject) => {
      const label = status.code === grpc.status.OK && messages === 0 ? "OK (no messages)" : grpcLabel(status.code);
      const violations = cancelAfterFirst ? [] : grpcViolations(status.details, headers, status.metadata);
      resolve({ outcome: label, detail: excerpt(`${label} after ${messages} messages: ${status.details}`), violations });
    });
  });
}

/** A TCP connection that sends nothing and is closed by us after holdMs: `idle, closed by us`, or what the gateway did. */
export function idleSocket(clients: SoakClients, holdMs: number): Promise<Observation> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port: clients.port });
    let received = "";
    let settled = false;
    const settle = (observation: Observation): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(observation);
    };
    const timer = setTimeout(() => settle(received ? { outcome: "the gateway sent bytes unasked", detail: excerpt(received) } : { outcome: "idle, closed by us" }), holdMs);
    socket.on("data", (chunk: Buffer) => void (received += chunk.toString("latin1")));
    socket.once("error", (error) => settle({ outcome: errorLabel(error), detail: errorDetail(error) }));
    socket.once("end", () => settle({ outcome: received ? "the gateway answered and closed" : "closed by the gateway", detail: received ? excerpt(received) : undefined }));
  });
}
