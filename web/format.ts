/** A duration as the page shows it: `87 ms` under a second, `1.94 s` from there. */
export function formatMs(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}
