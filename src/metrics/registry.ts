/**
 * A small Prometheus registry: counters, gauges and histograms with labels, rendered in the
 * text exposition format (version 0.0.4). Written here instead of pulling prom-client because
 * berthd needs only these three types and no default process collectors.
 */

export type Labels = Record<string, string>;

type Kind = 'counter' | 'gauge' | 'histogram';

interface Family {
  name: string;
  help: string;
  kind: Kind;
  labelNames: readonly string[];
  render(out: string[]): void;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Escape a label value: backslash, double quote and newline (exposition format rules). */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

/** Sample value as the format wants it (+Inf, -Inf, NaN spelled out). */
export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function labelText(names: readonly string[], values: readonly string[], extra?: [string, string]): string {
  const parts = names.map((n, i) => `${n}="${escapeLabelValue(values[i] ?? '')}"`);
  if (extra) parts.push(`${extra[0]}="${escapeLabelValue(extra[1])}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

function keyOf(names: readonly string[], labels: Labels): { key: string; values: string[] } {
  const values = names.map((n) => labels[n] ?? '');
  for (const k of Object.keys(labels)) {
    if (!names.includes(k)) throw new Error(`metric label ${k} is not declared`);
  }
  return { key: JSON.stringify(values), values };
}

abstract class Base implements Family {
  abstract readonly kind: Kind;
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[] = [],
  ) {
    if (!NAME.test(name)) throw new Error(`invalid metric name ${name}`);
    for (const l of labelNames) if (!LABEL.test(l) || l.startsWith('__')) throw new Error(`invalid label name ${l}`);
  }
  abstract render(out: string[]): void;
}

export class Counter extends Base {
  readonly kind = 'counter' as const;
  private readonly values = new Map<string, { labels: string[]; v: number }>();
  inc(labels: Labels = {}, by = 1): void {
    if (by < 0) throw new Error('counters only go up');
    const { key, values } = keyOf(this.labelNames, labels);
    const e = this.values.get(key);
    if (e) e.v += by;
    else this.values.set(key, { labels: values, v: by });
  }
  get(labels: Labels = {}): number {
    return this.values.get(keyOf(this.labelNames, labels).key)?.v ?? 0;
  }
  render(out: string[]): void {
    for (const e of this.values.values()) out.push(`${this.name}${labelText(this.labelNames, e.labels)} ${formatValue(e.v)}`);
  }
}

/** A gauge; either set directly or computed at scrape time by `collect`. */
export class Gauge extends Base {
  readonly kind = 'gauge' as const;
  private readonly values = new Map<string, { labels: string[]; v: number }>();
  collect: (() => Array<{ labels: Labels; value: number }>) | undefined;
  set(labels: Labels, v: number): void {
    const { key, values } = keyOf(this.labelNames, labels);
    this.values.set(key, { labels: values, v });
  }
  render(out: string[]): void {
    const rows = this.collect ? this.collect().map((r) => ({ labels: keyOf(this.labelNames, r.labels).values, v: r.value })) : [...this.values.values()];
    for (const e of rows) out.push(`${this.name}${labelText(this.labelNames, e.labels)} ${formatValue(e.v)}`);
  }
}

/** Default latency buckets, seconds (5 ms … 60 s): CRI calls range from sub-ms to a long pull. */
export const DEFAULT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export class Histogram extends Base {
  readonly kind = 'histogram' as const;
  private readonly series = new Map<string, { labels: string[]; counts: number[]; sum: number; count: number }>();
  constructor(
    name: string,
    help: string,
    labelNames: readonly string[] = [],
    readonly buckets: readonly number[] = DEFAULT_BUCKETS,
  ) {
    super(name, help, labelNames);
    if (labelNames.includes('le')) throw new Error('histogram label "le" is reserved');
    for (let i = 1; i < buckets.length; i++) if (!(buckets[i]! > buckets[i - 1]!)) throw new Error('histogram buckets must increase');
  }
  observe(labels: Labels, v: number): void {
    const { key, values } = keyOf(this.labelNames, labels);
    let s = this.series.get(key);
    if (!s) {
      s = { labels: values, counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    // Per-bucket counts; rendering makes them cumulative.
    const i = this.buckets.findIndex((b) => v <= b);
    if (i >= 0) s.counts[i]!++;
    s.sum += v;
    s.count++;
  }
  count(labels: Labels = {}): number {
    return this.series.get(keyOf(this.labelNames, labels).key)?.count ?? 0;
  }
  render(out: string[]): void {
    for (const s of this.series.values()) {
      let acc = 0;
      this.buckets.forEach((b, i) => {
        acc += s.counts[i]!;
        out.push(`${this.name}_bucket${labelText(this.labelNames, s.labels, ['le', formatValue(b)])} ${acc}`);
      });
      out.push(`${this.name}_bucket${labelText(this.labelNames, s.labels, ['le', '+Inf'])} ${s.count}`);
      out.push(`${this.name}_sum${labelText(this.labelNames, s.labels)} ${formatValue(s.sum)}`);
      out.push(`${this.name}_count${labelText(this.labelNames, s.labels)} ${s.count}`);
    }
  }
}

export class Registry {
  private readonly families = new Map<string, Family>();

  private add<F extends Family>(f: F): F {
    if (this.families.has(f.name)) throw new Error(`metric ${f.name} registered twice`);
    this.families.set(f.name, f);
    return f;
  }
  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.add(new Counter(name, help, labelNames));
  }
  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.add(new Gauge(name, help, labelNames));
  }
  histogram(name: string, help: string, labelNames: readonly string[] = [], buckets?: readonly number[]): Histogram {
    return this.add(new Histogram(name, help, labelNames, buckets));
  }

  /** The whole registry in text exposition format. A failing collector drops only its family. */
  render(): string {
    const out: string[] = [];
    for (const f of this.families.values()) {
      const rows: string[] = [];
      try {
        f.render(rows);
      } catch {
        continue;
      }
      out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.kind}`, ...rows);
    }
    return out.join('\n') + '\n';
  }
}

export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
