import { existsSync, readdirSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";

/** The segment files of the write-ahead log at `base` (`<base>.<n>`), by name. */
export function segmentFiles(base: string): string[] {
  const folder = dirname(base);
  const prefix = `${basename(base)}.`;
  return existsSync(folder) ? readdirSync(folder).filter((name) => name.startsWith(prefix)) : [];
}

/** Their bytes together: how much disk the log holds. */
export function segmentBytes(base: string): number {
  return segmentFiles(base).reduce((sum, name) => sum + statSync(join(dirname(base), name)).size, 0);
}
