// The load generators' side of the IPC protocol in proc.ts: read params, say "start", send the result.
import type { LoadMessage } from "./proc.js";

export function loadParams<T>(): T {
  return JSON.parse(process.argv[2] ?? "{}") as T;
}

function send(message: LoadMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) {
      if (message.type !== "start") process.stdout.write(`${JSON.stringify(message)}\n`);
      resolve();
      return;
    }
    process.send(message, () => resolve());
  });
}

export const markStart = (): Promise<void> => send({ type: "start" });

/** Runs the generator, sends its result (or error) and exits. */
export async function runGenerator(generate: () => Promise<unknown>): Promise<void> {
  try {
    await send({ type: "result", result: await generate() });
    process.exit(0);
  } catch (error) {
    await send({ type: "error", message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
    process.exit(1);
  }
}
