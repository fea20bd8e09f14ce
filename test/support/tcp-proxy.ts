import { createServer, connect, type Server, type Socket } from "node:net";

/**
 * A TCP proxy in front of a real server, for taking it away and bringing it back: `close()`
 * refuses connections and cuts the open ones, `reopen()` listens on the same port again,
 * `stall()` stops relaying bytes (a server that hangs) until `resume()`.
 */
export interface TcpProxy {
  readonly port: number;
  close(): Promise<void>;
  reopen(): Promise<void>;
  stall(): void;
  resume(): void;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  const held: Array<[Socket, Buffer]> = [];
  let stalled = false;
  let server: Server | undefined;

  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
  };
  // Relayed by hand rather than piped, so that a stall holds every byte, in order.
  const relay = (from: Socket, to: Socket) => {
    from.on("data", (chunk: Buffer) => (stalled ? held.push([to, chunk]) : to.write(chunk)));
    from.on("close", () => to.destroy());
  };
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      const listening = createServer((client) => {
        const upstream = connect(target.port, target.host);
        track(client);
        track(upstream);
        relay(client, upstream);
        relay(upstream, client);
      });
      listening.once("error", reject);
      listening.listen(port, "127.0.0.1", () => {
        server = listening;
        resolve((listening.address() as { port: number }).port);
      });
    });

  const port = await listen(0);
  return {
    port,
    async close() {
      const closing = server;
      server = undefined;
      held.length = 0;
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => (closing ? closing.close(() => resolve()) : resolve()));
    },
    async reopen() {
      await listen(port);
    },
    stall() {
      stalled = true;
    },
    resume() {
      stalled = false;
      for (const [to, chunk] of held.splice(0)) if (!to.destroyed) to.write(chunk);
    },
  };
}
