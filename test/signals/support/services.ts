import { createServer } from "node:net";

/** A local port with nothing listening on it. */
export async function closedPort(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** How long `work` took to settle, in ms, and how. */
export async function timed(work: Promise<unknown>): Promise<{ ms: number; error: unknown }> {
  const started = performance.now();
  const error = await work.then(
    () => undefined,
    (reason: unknown) => reason,
  );
  return { ms: performance.now() - started, error };
}

/** An error's message and those of its causes, for checking that none of them holds a secret. */
export function errorText(error: unknown): string {
  const parts: string[] = [];
  for (let current = error, depth = 0; current !== undefined && current !== null && depth < 10; depth++) {
    parts.push(current instanceof Error ? `${current.message}\n${current.stack ?? ""}` : String(current));
    current = current instanceof Error ? current.cause : undefined;
  }
  return parts.join("\n");
}
