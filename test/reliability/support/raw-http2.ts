/**
 * A cleartext HTTP/2 peer that writes frames byte by byte, for the abuse rows a conforming
 * client (node:http2) refuses to send: streams past the server's limit, rapid resets, floods.
 */
import * as net from "node:net";

export const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

export const FrameType = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const Flag = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;
export const ErrorCode = { NO_ERROR: 0, PROTOCOL_ERROR: 1, SETTINGS_TIMEOUT: 4, REFUSED_STREAM: 7, CANCEL: 8, ENHANCE_YOUR_CALM: 11 } as const;

export interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([header, payload]);
}

/** HPACK integer with an N-bit prefix (RFC 7541 section 5.1). */
function hpackInteger(value: number, prefixBits: number, firstByte = 0): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([firstByte | value]);
  const bytes = [firstByte | max];
  let rest = value - max;
  while (rest >= 128) {
    bytes.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}

/** A header block of literal fields without indexing, new names, no Huffman coding. */
export function headerBlock(headers: readonly (readonly [string, string])[]): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of headers) {
    parts.push(Buffer.from([0x00]), hpackInteger(name.length, 7), Buffer.from(name), hpackInteger(Buffer.byteLength(value), 7), Buffer.from(value));
  }
  return Buffer.concat(parts);
}

export function requestHeaders(method: string, path: string, extra: readonly (readonly [string, string])[] = []): Buffer {
  return headerBlock([[":method", method], [":scheme", "http"], [":authority", "127.0.0.1"], [":path", path], ...extra]);
}

export const settings = (entries: readonly (readonly [number, number])[] = []): Buffer => {
  const payload = Buffer.alloc(entries.length * 6);
  entries.forEach(([id, value], index) => {
    payload.writeUInt16BE(id, index * 6);
    payload.writeUInt32BE(value, index * 6 + 2);
  });
  return frame(FrameType.SETTINGS, 0, 0, payload);
};
export const settingsAck = (): Buffer => frame(FrameType.SETTINGS, Flag.ACK, 0);
export const headers = (streamId: number, block: Buffer, flags = Flag.END_HEADERS | Flag.END_STREAM): Buffer => frame(FrameType.HEADERS, flags, streamId, block);
export const rstStream = (streamId: number, code: number = ErrorCode.CANCEL): Buffer => {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(code);
  return frame(FrameType.RST_STREAM, 0, streamId, payload);
};
export const ping = (n = 0): Buffer => {
  const payload = Buffer.alloc(8);
  payload.writeUInt32BE(n >>> 0, 4);
  return frame(FrameType.PING, 0, 0, payload);
};

/** A raw connection: sends bytes, parses the frames the server answers with. */
export interface RawHttp2 {
  readonly socket: net.Socket;
  readonly frames: Frame[];
  /** Resolves when the server closed the connection, with the ms since connect. */
  readonly closed: Promise<number>;
  send(...chunks: Buffer[]): boolean;
  /**
   * Sends in batches with a pause between them, stopping at the server's GOAWAY or close: a
   * peer that keeps writing into a closed connection gets a reset that can drop what it had
   * not read yet (the GOAWAY included).
   */
  sendPaced(chunks: readonly Buffer[], batch?: number, pauseMs?: number): Promise<void>;
  /** The first GOAWAY received, if any: its error code. */
  goawayCode(): number | undefined;
  /** Resolves with the first frame matching, or undefined after `timeoutMs`. */
  waitFor(match: (frame: Frame) => boolean, timeoutMs: number): Promise<Frame | undefined>;
  destroy(): void;
}

export interface RawHttp2Options {
  /** Acknowledge the server's SETTINGS (and wait for them before resolving); default true. */
  ackSettings?: boolean;
}

/**
 * Connects and sends the preface and an empty SETTINGS frame; by default resolves once the
 * server's SETTINGS came and were acknowledged, so that its limits bind this peer.
 */
export async function connectRawHttp2(url: string, { ackSettings = true }: RawHttp2Options = {}): Promise<RawHttp2> {
  const { hostname, port } = new URL(url);
  const socket = net.connect(Number(port), hostname);
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  const started = Date.now();
  const frames: Frame[] = [];
  const waiters = new Set<{ match: (frame: Frame) => boolean; resolve: (frame: Frame | undefined) => void }>();
  let buffered = Buffer.alloc(0);
  socket.on("error", () => {});
  const closed = new Promise<number>((resolve) => socket.once("close", () => resolve(Date.now() - started)));
  socket.on("data", (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 9) {
      const length = buffered.readUIntBE(0, 3);
      if (buffered.length < 9 + length) break;
      const received: Frame = { type: buffered[3], flags: buffered[4], streamId: buffered.readUInt32BE(5) & 0x7fffffff, payload: buffered.subarray(9, 9 + length) };
      buffered = buffered.subarray(9 + length);
      if (ackSettings && received.type === FrameType.SETTINGS && !(received.flags & Flag.ACK)) socket.write(settingsAck());
      // Keep memory flat under floods: only frames a test asks about are kept.
      if (received.type !== FrameType.PING && received.type !== FrameType.DATA) frames.push(received);
      for (const waiter of waiters) {
        if (waiter.match(received)) {
          waiters.delete(waiter);
          waiter.resolve(received);
        }
      }
    }
  });
  socket.write(Buffer.concat([PREFACE, settings()]));
  const peer: RawHttp2 = {
    socket,
    frames,
    closed,
    send: (...chunks) => socket.write(Buffer.concat(chunks)),
    goawayCode() {
      const goaway = frames.find((f) => f.type === FrameType.GOAWAY);
      return goaway === undefined ? undefined : goaway.payload.readUInt32BE(4);
    },
    waitFor(match, timeoutMs) {
      const seen = frames.find(match);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve) => {
        const waiter = { match, resolve };
        waiters.add(waiter);
        setTimeout(() => {
          waiters.delete(waiter);
          resolve(undefined);
        }, timeoutMs).unref();
      });
    },
    async sendPaced(chunks, batch = 50, pauseMs = 5) {
      for (let at = 0; at < chunks.length; at += batch) {
        if (socket.destroyed || peer.goawayCode() !== undefined) return;
        socket.write(Buffer.concat(chunks.slice(at, at + batch)));
        await new Promise((resolve) => setTimeout(resolve, pauseMs));
      }
    },
    destroy: () => socket.destroy(),
  };
  if (ackSettings) await peer.waitFor((f) => f.type === FrameType.SETTINGS && !(f.flags & Flag.ACK), 5000);
  return peer;
}
