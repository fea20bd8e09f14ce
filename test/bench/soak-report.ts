// The soak's report: the RSS trend after the warm-up (least squares), the verdicts, soak.md with the
// samples and the calls by kind and outcome, soak.svg (RSS over minutes) and soak.json (raw).
import { writeFileSync } from "node:fs";
import path from "node:path";
import type { SoakLoadResult } from "./load-soak.js";
import type { Verdict } from "./report.js";
import { median } from "./stats.js";
import { soakSvg } from "./soak-svg.js";

export interface AnswerCounts {
  requests: number;
  completed: number;
  closedByPeer: number;
}
export interface ProviderStats {
  open: number;
  all: AnswerCounts;
  byFault: Record<string, AnswerCounts>;
}

/** One reading of the gateway process, every sampling interval. */
export interface SoakSample {
  /** Seconds since the load started. */
  atS: number;
  rssMb: number;
  /** From the gateway's own GET /metrics (prom-client's process metrics), when it answers. */
  heapUsedMb: number;
  activeHandles: number;
  /** The longest event-loop delay since the previous sample. */
  eventLoopLagMaxMs: number;
  openFds: number;
  /** The gateway's CPU over the interval before the sample, % of one core. */
  cpuPct: number;
  /** The load generator's, likewise: it shares the cores. */
  loadCpuPct: number;
  /** Work outside the soak's processes over that interval, % of all cores. */
  otherCpuPct: number;
}

export interface SoakRun {
  date: string;
  machine: string;
  revision: string;
  minutes: number;
  defaultMinutes: number;
  ratePerS: number;
  sampleIntervalS: number;
  samples: SoakSample[];
  /** One reading after the load stopped and the gateway sat idle for a sampling interval. */
  idleSample?: SoakSample;
  load?: SoakLoadResult;
  /** The bench provider's counters (provider.ts, GET /stats), read after the idle sample. */
  provider?: ProviderStats;
  gatewayLog: { sizeMb: number; warn: number; errorOrWorse: number; errorExamples: string[]; other: number; otherExamples: string[] };
  /** How the gateway process ended, when it did so during the soak. */
  gatewayExit?: string;
  notes: string[];
}

/** The RSS after the warm-up: least-squares slope, median, and the last sample against it. */
export interface RssTrend {
  warmupS: number;
  samples: number;
  slopeMbPerMin: number;
  medianMb: number;
  lastMb: number;
  lastVsMedian: number;
  flat: boolean;
}

/** "Flat": |slope| under this, in MB per minute … */
export const FLAT_SLOPE_MB_PER_MIN = 1;
/** … and the last sample within this share of the post-warm-up median. */
export const FLAT_LAST_WITHIN = 0.1;

/** The first 2 minutes, or the first 20% of a shorter run. */
export const warmupSeconds = (durationS: number): number => Math.min(120, 0.2 * durationS);

export function rssTrend(samples: SoakSample[], durationS: number): RssTrend {
  const warmupS = warmupSeconds(durationS);
  const after = samples.filter((sample) => sample.atS >= warmupS && Number.isFinite(sample.rssMb));
  const xs = after.map((sample) => sample.atS / 60);
  const ys = after.map((sample) => sample.rssMb);
  const meanX = xs.reduce((a, b) => a + b, 0) / xs.length;
  const meanY = ys.reduce((a, b) => a + b, 0) / ys.length;
  const sxx = xs.reduce((sum, x) => sum + (x - meanX) ** 2, 0);
  const sxy = xs.reduce((sum, x, index) => sum + (x - meanX) * (ys[index] - meanY), 0);
  const slopeMbPerMin = after.length >= 2 && sxx > 0 ? sxy / sxx : Number.NaN;
  const medianMb = median(ys);
  const lastMb = ys.at(-1) ?? Number.NaN;
  const lastVsMedian = (lastMb - medianMb) / medianMb;
  const flat = after.length >= 3 && Math.abs(slopeMbPerMin) < FLAT_SLOPE_MB_PER_MIN && Math.abs(lastVsMedian) <= FLAT_LAST_WITHIN;
  return { warmupS, samples: after.length, slopeMbPerMin, medianMb, lastMb, lastVsMedian, flat };
}

const fixed = (value: number, digits: number): string => (Number.isFinite(value) ? value.toFixed(digits) : "–");
const signed = (value: number, digits: number): string => (Number.isFinite(value) ? `${value >= 0 ? "+" : ""}${value.toFixed(digits)}` : "–");
const minutes = (seconds: number): string => fixed(seconds / 60, 2);
const line = (cells: Array<string | number>): string => `| ${cells.join(" | ")} |`;
const cell = (text: string): string => text.replace(/\|/g, "\\|").replace(/\n/g, " ");

function totals(load: SoakLoadResult | undefined) {
  const kinds = load?.kinds ?? [];
  const calls = kinds.reduce((sum, kind) => sum + Object.values(kind.outcomes).reduce((a, b) => a + b, 0), 0);
  const unexpected = (kind: SoakLoadResult["kinds"][number]) => Object.entries(kind.outcomes).filter(([label]) => !kind.expected.includes(label));
  const undocumented = kinds.reduce((sum, kind) => sum + unexpected(kind).reduce((a, [, count]) => a + count, 0) + kind.unfinished, 0);
  const violations = kinds.reduce((sum, kind) => sum + Object.values(kind.violations).reduce((a, b) => a + b, 0), 0);
  const shouldAbort = kinds.filter((kind) => kind.abortsUpstream).reduce((sum, kind) => sum + kind.expected.reduce((a, label) => a + (kind.outcomes[label] ?? 0), 0), 0);
  return { calls, undocumented, violations, shouldAbort, unexpected };
}

export function soakVerdicts(run: SoakRun, trend: RssTrend): Verdict[] {
  const { calls, undocumented, violations, shouldAbort } = totals(run.load);
  const delayed = run.provider?.byFault.delay;
  const verdict = (target: string, available: boolean, pass: boolean, figure: string): Verdict => ({ target, status: available ? (pass ? "PASS" : "MISS") : "N/A", figure: available ? figure : "not measured" });
  return [
    verdict(
      `RSS flat after warm-up (|slope| < ${FLAT_SLOPE_MB_PER_MIN} MB/min, last sample within ${FLAT_LAST_WITHIN * 100}% of the post-warm-up median)`,
      trend.samples >= 3,
      trend.flat,
      `${signed(trend.slopeMbPerMin, 2)} MB/min over ${trend.samples} samples; last ${fixed(trend.lastMb, 1)} MB, ${signed(trend.lastVsMedian * 100, 1)}% from the median ${fixed(trend.medianMb, 1)} MB`,
    ),
    verdict("no undocumented errors", run.load !== undefined, undocumented === 0, `${undocumented} of ${calls} calls`),
    verdict("no contract violations (no-cache headers, journal key, no stack trace, Retry-After)", run.load !== undefined, violations === 0, `${violations} of ${calls} calls`),
    verdict("the gateway stayed up", true, run.gatewayExit === undefined, run.gatewayExit ?? "running at the end"),
    verdict("no upstream request left open after the drain", run.provider !== undefined, run.provider?.open === 0, `${run.provider?.open ?? "?"} open at the provider`),
    verdict(
      "a hang-up, a cancel or a deadline aborts the upstream request (no delayed answer sent in full)",
      delayed !== undefined && delayed.requests > 0,
      delayed?.completed === 0,
      `${delayed?.requests} delayed requests reached the provider for ${shouldAbort} such calls; the gateway closed ${delayed?.closedByPeer} early, ${delayed?.completed} were answered in full`,
    ),
  ];
}

function samplesTable(run: SoakRun): string {
  const windowBefore = (atS: number) => run.load?.windows.find((window) => Math.abs(window.startS + run.sampleIntervalS - atS) < run.sampleIntervalS / 2);
  const header = ["t (min)", "RSS MB", "heap used MB", "open fds", "active handles", "max event-loop delay ms", "gateway CPU %", "load gen CPU %", "others' CPU % of the machine", "calls in the interval", "undocumented", "REST unary p50 / p99 ms"];
  const rows = run.samples.map((sample) => {
    const window = windowBefore(sample.atS);
    return line([
      minutes(sample.atS),
      fixed(sample.rssMb, 1),
      fixed(sample.heapUsedMb, 1),
      fixed(sample.openFds, 0),
      fixed(sample.activeHandles, 0),
      fixed(sample.eventLoopLagMaxMs, 0),
      fixed(sample.cpuPct, 0),
      fixed(sample.loadCpuPct, 0),
      fixed(sample.otherCpuPct, 0),
      window ? window.completed : "–",
      window ? window.undocumented : "–",
      window ? `${fixed(window.restUnaryMs.p50, 1)} / ${fixed(window.restUnaryMs.p99, 1)}` : "–",
    ]);
  });
  const idle = run.idleSample;
  if (idle) rows.push(line([`${minutes(idle.atS)} (idle)`, fixed(idle.rssMb, 1), fixed(idle.heapUsedMb, 1), fixed(idle.openFds, 0), fixed(idle.activeHandles, 0), fixed(idle.eventLoopLagMaxMs, 0), fixed(idle.cpuPct, 0), fixed(idle.loadCpuPct, 0), fixed(idle.otherCpuPct, 0), "–", "–", "–"]));
  return [line(header), line(header.map(() => "---")), ...rows].join("\n");
}

function kindsTable(load: SoakLoadResult): string {
  const header = ["kind", "protocol", "what", "calls/s", "sent", "shed", "expected outcomes", "other outcomes", "p50 ms", "p99 ms"];
  const rows = load.kinds.map((kind) => {
    const expected = kind.expected.map((label) => `${label}: ${kind.outcomes[label] ?? 0}`).join(", ");
    const other = Object.entries(kind.outcomes).filter(([label]) => !kind.expected.includes(label)).map(([label, count]) => `**${label}: ${count}**`);
    if (kind.unfinished) other.push(`**unfinished after the drain: ${kind.unfinished}**`);
    return line([kind.name, kind.protocol, kind.what, fixed(kind.perSecond, 1), kind.sent, kind.shed, cell(expected), cell(other.join(", ") || "–"), fixed(kind.latencyMs.p50, 1), fixed(kind.latencyMs.p99, 1)]);
  });
  return [line(header), line(header.map(() => "---")), ...rows].join("\n");
}

function examplesList(examples: SoakLoadResult["examples"]): string {
  return examples.map((example) => `- \`${example.kind}\` → **${cell(example.outcome)}** at ${minutes(example.atS)} min${example.detail ? `: \`${cell(example.detail).replace(/`/g, "'")}\`` : ""}`).join("\n");
}

export function soakMarkdown(run: SoakRun, trend: RssTrend, verdicts: Verdict[]): string {
  const { calls, undocumented, violations, shouldAbort, unexpected } = totals(run.load);
  const trial = run.minutes < run.defaultMinutes;
  const out = [
    "## passthrough soak",
    "",
    run.machine,
    "",
    `${fixed(run.minutes, 1)} min of mixed load and faults at ${fixed(run.ratePerS, 0)} calls/s in all · RSS sampled every ${run.sampleIntervalS} s · warm-up ${fixed(trend.warmupS, 0)} s`,
    "",
    ...(trial ? [`**TRIAL RUN: ${fixed(run.minutes, 1)} min, shorter than the default ${run.defaultMinutes}; not the soak's figures.**`, ""] : []),
    "### Targets",
    "",
    "| target | result | figure |",
    "| --- | --- | --- |",
    ...verdicts.map((verdict) => line([verdict.target, verdict.status, verdict.figure])),
    "",
    "![gateway RSS over the soak](soak.svg)",
    "",
    "### Samples",
    "",
    "Each row is one reading of the gateway process; the call columns cover the interval that ends at the reading.",
    "",
    samplesTable(run),
    "",
  ];
  if (run.load) {
    out.push("### Calls by kind and outcome", "", `${calls} calls in ${fixed(run.load.seconds, 0)} s. Latencies are those of the calls that ended as expected. *Shed*: due while the kind was at its in-flight cap, so not sent.`, "", kindsTable(run.load), "");
    out.push("### Undocumented errors", "");
    if (undocumented === 0) out.push("None.", "");
    else {
      const byKind = run.load.kinds.flatMap((kind) => unexpected(kind).map(([label, count]) => `\`${kind.name}\` ${cell(label)}: ${count}`));
      out.push(`${undocumented} calls: ${byKind.join(", ")}. First examples:`, "", examplesList(run.load.examples), "");
    }
    out.push("### Contract violations", "");
    if (violations === 0) out.push("None: every HTTP answer carried the no-cache headers and `x-journal-key`, no error carried a stack trace or file path, every relayed 429 its `retry-after`.", "");
    else {
      const byKind = run.load.kinds.flatMap((kind) => Object.entries(kind.violations).map(([label, count]) => `\`${kind.name}\` ${cell(label)}: ${count}`));
      out.push(`${violations}: ${byKind.join(", ")}. First examples:`, "", examplesList(run.load.violationExamples), "");
    }
  }
  if (run.provider) {
    const rows = [["all", run.provider.all], ...Object.entries(run.provider.byFault).sort(([a], [b]) => a.localeCompare(b))] as Array<[string, AnswerCounts]>;
    out.push(
      "### Upstream requests",
      "",
      `The bench provider's counters after the drain and the idle sample: ${run.provider.open} answers still open. The kinds that end before the provider answers (hang-ups, cancels, deadlines: ${shouldAbort} calls ended so) ask for its "delay" fault; each such request the gateway sent should be closed early, none answered in full. A request that never reached the provider was aborted before the gateway sent it.`,
      "",
      line(["`bench_fault`", "requests", "answered in full", "closed early by the gateway"]),
      line(["---", "---", "---", "---"]),
      ...rows.map(([name, tally]) => line([name, tally.requests, tally.completed, tally.closedByPeer])),
      "",
    );
  }
  const logged = run.gatewayLog;
  out.push(
    "### Gateway log",
    "",
    `${fixed(logged.sizeMb, 1)} MB: ${logged.warn} lines at warn (each failed call is one), ${logged.errorOrWorse} at error or above, ${logged.other} not from the logger (Node.js warnings, traces).`,
    "",
  );
  for (const [title, examples] of [["First at error or above:", logged.errorExamples], ["First not from the logger:", logged.otherExamples]] as const) {
    if (examples.length) out.push(title, "", ...examples.map((example) => `    ${example}`), "");
  }
  if (run.notes.length) out.push("### Notes", "", ...run.notes.map((note) => `- ${note}`), "");
  return out.join("\n");
}

/** Writes soak.md, soak.svg and soak.json into `dir`; returns the markdown. */
export function writeSoakReport(dir: string, run: SoakRun): string {
  const trend = rssTrend(run.samples, run.minutes * 60);
  const verdicts = soakVerdicts(run, trend);
  const markdown = soakMarkdown(run, trend, verdicts);
  writeFileSync(path.join(dir, "soak.md"), markdown);
  writeFileSync(path.join(dir, "soak.svg"), soakSvg(run, trend));
  writeFileSync(path.join(dir, "soak.json"), `${JSON.stringify({ ...run, trend, verdicts, trial: run.minutes < run.defaultMinutes }, null, 2)}\n`);
  return markdown;
}
