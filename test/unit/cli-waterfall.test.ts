import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatDuration, renderWaterfall, type TraceSpanView } from '../../src/cli/waterfall.js';
import { toView } from '../../src/cli/trace.js';

const ms = (n: number) => BigInt(Math.round(n * 1e6));
const base = 1_700_000_000_000_000_000n;
const span = (name: string, startMs: number, durMs: number, error?: string): TraceSpanView => ({
  name,
  startNs: base + ms(startMs),
  durationNs: ms(durMs),
  error,
});

test('durations read as ms or s with sensible precision', () => {
  assert.equal(formatDuration(ms(0.5)), '0.50ms');
  assert.equal(formatDuration(ms(12.34)), '12.3ms');
  assert.equal(formatDuration(ms(250)), '250ms');
  assert.equal(formatDuration(ms(1500)), '1.50s');
});

test('the waterfall has a total line and one line per span, within the width', () => {
  const spans = [span('RunPodSandbox', 0, 100), span('cni.setup', 20, 50), span('shim.create', 70, 30)];
  const lines = renderWaterfall(spans, 80);
  assert.equal(lines[0], 'total 100ms, 3 spans');
  assert.equal(lines.length, 2 + 3);
  for (const l of lines) assert.ok([...l].length <= 80, `too wide (${[...l].length}): ${l}`);
  assert.match(lines[2]!, /RunPodSandbox\s+\+0\.00ms\s+100ms/);
  assert.match(lines[3]!, /cni\.setup\s+\+20\.0ms\s+50\.0ms/);
});

test('bars are placed and scaled on the common time axis', () => {
  const lines = renderWaterfall([span('whole', 0, 100), span('second-half', 50, 50)], 100);
  const bar = (l: string) => l.slice(l.indexOf('|') + 1, l.lastIndexOf('|'));
  const whole = bar(lines[2]!);
  const half = bar(lines[3]!);
  assert.equal(whole.length, half.length);
  assert.equal(whole.trim().length, whole.length, 'the whole span fills the axis');
  const firstFilled = half.indexOf('█');
  assert.ok(Math.abs(firstFilled - whole.length / 2) <= 1, `second half starts mid-axis (${firstFilled} of ${whole.length})`);
  assert.ok(Math.abs(half.trim().length - whole.length / 2) <= 1);
});

test('failed spans are marked and show their error; the total counts them', () => {
  const lines = renderWaterfall([span('ok', 0, 10), span('pull', 10, 5, 'manifest unknown')], 90);
  assert.equal(lines[0], 'total 15.0ms, 2 spans, 1 failed');
  assert.ok(lines[3]!.startsWith('✗ pull'));
  assert.ok(lines[3]!.endsWith(' manifest unknown'));
  assert.match(lines[3]!, /!+/);
  assert.ok(lines[2]!.startsWith('  ok'));
});

test('spans sort by start, a parent before the child that starts with it', () => {
  const lines = renderWaterfall([span('child', 0, 5), span('late', 8, 1), span('parent', 0, 10)], 80);
  assert.deepEqual(
    lines.slice(2).map((l) => l.trim().split(/\s+/)[0]),
    ['parent', 'child', 'late'],
  );
});

test('no spans, zero-length spans and narrow terminals still render', () => {
  assert.deepEqual(renderWaterfall([], 80), ['no spans recorded for this pod']);
  const lines = renderWaterfall([span('instant', 0, 0)], 20);
  assert.match(lines[2]!, /\|█ *\|/);
});

test('wire spans (bigint nanos, map attrs) convert to the view', () => {
  const v = toView({ name: 'x', startUnixNano: 5n, durationNano: 7n, attrs: { a: 'b' }, error: '' });
  assert.deepEqual(v, { name: 'x', startNs: 5n, durationNs: 7n, error: undefined, attrs: { a: 'b' } });
});
