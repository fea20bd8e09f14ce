import { pino, type Logger } from "pino";

export type { Logger };

export interface LoggerOptions {
  level: string;
  /** `server.instanceId`, on every line, so that the logs of several instances can be told apart. */
  instance?: string;
  /** Where JSON lines go; default standard output. */
  destination?: NodeJS.WritableStream;
}

/**
 * Structured JSON logs (pino). Authorization headers and keys are redacted by path as a
 * second line of defence; the code never passes them to the logger in the first place.
 */
export function createLogger({ level, instance, destination }: LoggerOptions): Logger {
  return pino(
    {
      level,
      base: { service: "passthrough", ...(instance !== undefined && { instance }) },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ["authorization", "*.authorization", "headers.authorization", "apiKey", "*.apiKey"], censor: "[redacted]" },
    },
    destination ?? pino.destination({ sync: false }),
  );
}

/** An error's message for a log line's `error` field (its stack stays out of the logs). */
export const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));
