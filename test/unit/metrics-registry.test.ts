import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry, escapeLabelValue, parseHostPort, serveMetrics, berthdMetrics } from '../../src/metrics/index.js';

/** Every non-comment line of the exposition format: name{labels} value. */
const SAMPLE_LINE = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? (NaN|[+-]Inf|-?[0-9.e+-]+)$/;

function assertValidExposition(text: string): void {
  assert.ok(text.endsWith('\n'), 'ends with a newline');
  for (const line of text.trimEnd().split('\n')) {
    if (line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
    assert.match(line, SAMPLE_LINE);
  }
}

test('counters, gauges and histograms render in the text exposition format', () => {
  const r = new Registry();
  const c = r.counter('jobs_total', 'Jobs done.', ['kind']);
  c.inc({ kind: 'a' });
  c.inc({ kind: 'a' }, 2);
  c.inc({ kind: 'b"x\\y\nz' });
  const g = r.gauge('temperature', 'Heat.');
  g.set({}, 21.5);
  const h = r.histogram('latency_seconds', 'Latency.', ['method'], [0.1, 1]);
  h.observe({ method: 'm' }, 0.05);
  h.observe({ method: 'm' }, 0.5);
  h.observe({ method: 'm' }, 5);
  const text = r.render();
  assertValidExposition(text);
  assert.match(text, /^# TYPE jobs_total counter$/m);
  assert.match(text, /^jobs_total\{kind="a"\} 3$/m);
  assert.match(text, /^jobs_total\{kind="b\\"x\\\\y\\nz"\} 1$/m);
  assert.match(text, /^temperature 21.5$/m);
  assert.match(text, /^latency_seconds_bucket\{method="m",le="0.1"\} 1$/m);
  assert.match(text, /^latency_seconds_bucket\{method="m",le="1"\} 2$/m);
  assert.match(text, /^latency_seconds_bucket\{method="m",le="\+Inf"\} 3$/m);
  assert.match(text, /^latency_seconds_sum\{method="m"\} 5.55$/m);
  assert.match(text, /^latency_seconds_count\{method="m"\} 3$/m);
});

test('a gauge collector is read at scrape time', () => {
  const r = new Registry();
  let n = 1;
  r.gauge('things', 'Things.', ['state']).collect = () => [{ labels: { state: 'up' }, value: n }];
  assert.match(r.render(), /^things\{state="up"\} 1$/m);
  n = 7;
  assert.match(r.render(), /^things\{state="up"\} 7$/m);
});

test('a failing collector drops only its own family', () => {
  const r = new Registry();
  r.gauge('broken', 'Broken.').collect = () => {
    throw new Error('boom');
  };
  r.counter('fine_total', 'Fine.').inc();
  const text = r.render();
  assert.doesNotMatch(text, /broken/);
  assert.match(text, /^fine_total 1$/m);
});

test('invalid names, undeclared labels, duplicate families and falling counters are refused', () => {
  const r = new Registry();
  assert.throws(() => r.counter('bad-name', 'x'));
  assert.throws(() => r.counter('ok_total', 'x', ['__reserved']));
  const c = r.counter('ok_total', 'x', ['a']);
  assert.throws(() => r.counter('ok_total', 'x'));
  assert.throws(() => c.inc({ b: '1' }));
  assert.throws(() => c.inc({ a: '1' }, -1));
  assert.throws(() => r.histogram('h', 'x', ['le']));
  assert.throws(() => r.histogram('h2', 'x', [], [1, 0.5]));
});

test('label values are escaped', () => {
  assert.equal(escapeLabelValue('a"b\\c\nd'), 'a\\"b\\\\c\\nd');
});

test('host:port parsing accepts IPv4 and bracketed IPv6 and refuses the rest', () => {
  assert.deepEqual(parseHostPort('127.0.0.1:9338'), { host: '127.0.0.1', port: 9338 });
  assert.deepEqual(parseHostPort('[::1]:0'), { host: '::1', port: 0 });
  assert.throws(() => parseHostPort('localhost'));
  assert.throws(() => parseHostPort('127.0.0.1:99999'));
});

test('berthd metrics record RPC latency by method and code name, pulls and scrape-time gauges', async () => {
  const m = berthdMetrics({ pods: () => ({ ready: 2, notready: 0 }), containers: () => ({ running: 3 }), shims: () => 1 });
  m.observe('/runtime.v1.RuntimeService/Version', 0, 0.002);
  m.observe('/runtime.v1.RuntimeService/ContainerStatus', 5, 0.003);
  m.pulled(true, 1000, 1.5);
  m.pulled(false, 0, 0.2);
  const ep = await serveMetrics(m.registry, '127.0.0.1:0');
  try {
    const res = await fetch(`http://${ep.address}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0.0.4/);
    const text = await res.text();
    assertValidExposition(text);
    assert.match(text, /^berth_rpc_duration_seconds_count\{method="runtime.v1.RuntimeService\/Version",code="OK"\} 1$/m);
    assert.match(text, /^berth_rpc_duration_seconds_count\{method="runtime.v1.RuntimeService\/ContainerStatus",code="NOT_FOUND"\} 1$/m);
    assert.match(text, /^berth_image_pulls_total\{result="success"\} 1$/m);
    assert.match(text, /^berth_image_pulls_total\{result="failure"\} 1$/m);
    assert.match(text, /^berth_image_pull_bytes_total 1000$/m);
    assert.match(text, /^berth_pods\{state="ready"\} 2$/m);
    assert.match(text, /^berth_containers\{state="running"\} 3$/m);
    assert.match(text, /^berth_shims 1$/m);
    assert.equal((await fetch(`http://${ep.address}/other`)).status, 404);
  } finally {
    await ep.close();
  }
});
