// soak.svg, written by hand: RSS MB over the minutes of the soak, axes with round ticks, the warm-up
// shaded, the samples as a polyline and the least-squares line after the warm-up dashed.
import type { RssTrend, SoakRun } from "./soak-report.js";

const fixed = (value: number, digits: number): string => (Number.isFinite(value) ? value.toFixed(digits) : "–");
const signed = (value: number, digits: number): string => (Number.isFinite(value) ? `${value >= 0 ? "+" : ""}${value.toFixed(digits)}` : "–");

/** Steps of 1, 2 or 5 × 10^n giving about `count` ticks over [low, high]. */
function ticks(low: number, high: number, count: number): number[] {
  const raw = (high - low) / Math.max(1, count);
  const magnitude = 10 ** Math.floor(Math.log10(raw || 1));
  const step = [1, 2, 5, 10].map((factor) => factor * magnitude).find((candidate) => candidate >= raw) ?? raw;
  const list: number[] = [];
  for (let value = Math.ceil(low / step) * step; value <= high + 1e-9; value += step) list.push(Number(value.toFixed(6)));
  return list;
}

/** The plot of one run. */
export function soakSvg(run: SoakRun, trend: RssTrend): string {
  const width = 640;
  const height = 320;
  const margin = { left: 56, right: 16, top: 28, bottom: 40 };
  const points = run.samples.filter((sample) => Number.isFinite(sample.rssMb));
  const xMax = Math.max(run.minutes, ...points.map((sample) => sample.atS / 60));
  const rss = points.map((sample) => sample.rssMb);
  const low = Math.max(0, Math.floor((Math.min(...rss, Infinity) * 0.9) / 10) * 10);
  const high = Math.ceil((Math.max(...rss, 0) * 1.1) / 10) * 10 || 10;
  const x = (min: number): number => margin.left + (min / xMax) * (width - margin.left - margin.right);
  const y = (mb: number): number => height - margin.bottom - ((mb - low) / (high - low)) * (height - margin.top - margin.bottom);
  const text = (tx: number, ty: number, content: string, anchor = "middle", extra = ""): string =>
    `<text x="${tx.toFixed(1)}" y="${ty.toFixed(1)}" text-anchor="${anchor}" ${extra}>${content}</text>`;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<rect x="${x(0).toFixed(1)}" y="${margin.top}" width="${(x(trend.warmupS / 60) - x(0)).toFixed(1)}" height="${height - margin.top - margin.bottom}" fill="#eee"/>`,
    text((x(0) + x(trend.warmupS / 60)) / 2, margin.top + 14, "warm-up", "middle", 'fill="#666"'),
    text(width / 2, 16, `gateway RSS during the soak (${fixed(run.minutes, 1)} min)${run.minutes < run.defaultMinutes ? " — TRIAL" : ""}`, "middle", 'font-size="13"'),
  ];
  for (const tick of ticks(low, high, 5)) {
    parts.push(`<line x1="${margin.left}" x2="${width - margin.right}" y1="${y(tick).toFixed(1)}" y2="${y(tick).toFixed(1)}" stroke="#ddd"/>`, text(margin.left - 6, y(tick) + 4, String(tick), "end"));
  }
  for (const tick of ticks(0, xMax, 10)) {
    parts.push(`<line x1="${x(tick).toFixed(1)}" x2="${x(tick).toFixed(1)}" y1="${height - margin.bottom}" y2="${height - margin.bottom + 4}" stroke="#333"/>`, text(x(tick), height - margin.bottom + 16, String(tick)));
  }
  parts.push(
    `<line x1="${margin.left}" x2="${width - margin.right}" y1="${height - margin.bottom}" y2="${height - margin.bottom}" stroke="#333"/>`,
    `<line x1="${margin.left}" x2="${margin.left}" y1="${margin.top}" y2="${height - margin.bottom}" stroke="#333"/>`,
    text(width / 2, height - 6, "minutes since the load started"),
    text(14, height / 2, "RSS MB", "middle", `transform="rotate(-90 14 ${height / 2})"`),
    `<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="${points.map((sample) => `${x(sample.atS / 60).toFixed(1)},${y(sample.rssMb).toFixed(1)}`).join(" ")}"/>`,
    ...points.map((sample) => `<circle cx="${x(sample.atS / 60).toFixed(1)}" cy="${y(sample.rssMb).toFixed(1)}" r="2.5" fill="#1f77b4"/>`),
  );
  if (Number.isFinite(trend.slopeMbPerMin)) {
    const after = points.filter((sample) => sample.atS >= trend.warmupS);
    const meanX = after.reduce((sum, sample) => sum + sample.atS / 60, 0) / after.length;
    const meanY = after.reduce((sum, sample) => sum + sample.rssMb, 0) / after.length;
    const at = (min: number): number => meanY + trend.slopeMbPerMin * (min - meanX);
    const from = trend.warmupS / 60;
    const to = (after.at(-1)?.atS ?? 0) / 60;
    parts.push(
      `<line x1="${x(from).toFixed(1)}" y1="${y(at(from)).toFixed(1)}" x2="${x(to).toFixed(1)}" y2="${y(at(to)).toFixed(1)}" stroke="#d62728" stroke-dasharray="5 4"/>`,
      text(width - margin.right, margin.top + 14, `after warm-up: ${signed(trend.slopeMbPerMin, 2)} MB/min`, "end", 'fill="#d62728"'),
    );
  }
  parts.push("</svg>");
  return `${parts.join("\n")}\n`;
}
