/**
 * Renders a pod's startup spans as a terminal waterfall: a total line, then one line per span
 * (name, start offset, duration, a bar placed and scaled on the time axis). Pure: width in,
 * lines out.
 */

export interface TraceSpanView {
  name: string;
  /** Unix nanoseconds. */
  startNs: bigint;
  durationNs: bigint;
  error?: string;
  attrs?: Record<string, string>;
}

export function formatDuration(ns: bigint | number): string {
  const ms = Number(ns) / 1e6;
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)}s`;
  if (ms >= 100) return `${ms.toFixed(0)}ms`;
  if (ms >= 10) return `${ms.toFixed(1)}ms`;
  return `${ms.toFixed(2)}ms`;
}

/** Parents (longer, earlier) before their children; otherwise by start. */
export function sortSpans(spans: readonly TraceSpanView[]): TraceSpanView[] {
  return [...spans].sort((a, b) =>
    a.startNs !== b.startNs ? (a.startNs < b.startNs ? -1 : 1) : a.durationNs > b.durationNs ? -1 : a.durationNs < b.durationNs ? 1 : 0,
  );
}

const MIN_BAR = 10;
const MAX_NAME = 32;

export function renderWaterfall(spans: readonly TraceSpanView[], width: number): string[] {
  if (spans.length === 0) return ['no spans recorded for this pod'];
  const sorted = sortSpans(spans);
  const t0 = sorted[0]!.startNs;
  const end = sorted.reduce((m, s) => (s.startNs + s.durationNs > m ? s.startNs + s.durationNs : m), t0);
  const total = end - t0;
  const failed = sorted.filter((s) => s.error).length;
  const head = `total ${formatDuration(total)}, ${sorted.length} span${sorted.length === 1 ? '' : 's'}${failed ? `, ${failed} failed` : ''}`;

  const mark = (s: TraceSpanView) => (s.error ? '✗ ' : '  ');
  const clip = (n: string) => (n.length > MAX_NAME ? n.slice(0, MAX_NAME - 1) + '…' : n);
  const nameW = Math.max(4, ...sorted.map((s) => clip(s.name).length));
  const offsets = sorted.map((s) => `+${formatDuration(s.startNs - t0)}`);
  const durs = sorted.map((s) => formatDuration(s.durationNs));
  const offW = Math.max(5, ...offsets.map((o) => o.length));
  const durW = Math.max(8, ...durs.map((d) => d.length));
  // mark + name + 2 + offset + 2 + duration + 2 + |bar|
  const fixed = 2 + nameW + 2 + offW + 2 + durW + 2 + 2;
  const barW = Math.max(MIN_BAR, width - fixed);
  const scale = (ns: bigint): number => (total === 0n ? 0 : Number((ns * BigInt(barW * 1000)) / total) / 1000);

  const lines = [head, `  ${'STEP'.padEnd(nameW)}  ${'START'.padStart(offW)}  ${'DURATION'.padStart(durW)}  TIMELINE`];
  sorted.forEach((s, i) => {
    const from = Math.min(barW - 1, Math.floor(scale(s.startNs - t0)));
    const len = Math.max(1, Math.min(barW - from, Math.round(scale(s.durationNs))));
    const fill = s.error ? '!' : '█';
    const bar = ' '.repeat(from) + fill.repeat(len) + ' '.repeat(barW - from - len);
    let line = `${mark(s)}${clip(s.name).padEnd(nameW)}  ${offsets[i]!.padStart(offW)}  ${durs[i]!.padStart(durW)}  |${bar}|`;
    if (s.error) line += ` ${s.error}`;
    lines.push(line);
  });
  return lines;
}
