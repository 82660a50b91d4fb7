import { test } from 'node:test';
import assert from 'node:assert/strict';
import { msToNanos, pullTraceKey, recordPullSpan, toSpan, trace } from '../../src/cri/observe/berth-trace.js';
import { Tracer, type RuntimeContext } from '../../src/cri/server/runtime-context.js';
import { BerthError } from '../../src/errors.js';

test('fractional milliseconds become exact integer nanoseconds', () => {
  assert.equal(msToNanos(1.5), 1_500_000n);
  assert.equal(msToNanos(0), 0n);
  // A Date-sized value keeps its millisecond part exactly (no float overflow).
  assert.equal(msToNanos(1_700_000_000_123.25), 1_700_000_000_123_250_000n);
});

test('a tracer span becomes a proto span with string attrs and its error', () => {
  const s = toSpan({ name: 'cni-add', start: 1000.5, durationMs: 2.25, attrs: { n: 3, ok: true, who: 'x' }, error: 'boom' });
  assert.equal(s.name, 'cni-add');
  assert.equal(s.startUnixNano, 1_000_500_000n);
  assert.equal(s.durationNano, 2_250_000n);
  assert.deepEqual(s.attrs, { n: '3', ok: 'true', who: 'x' });
  assert.equal(s.error, 'boom');
  assert.equal(toSpan({ name: 'x', start: 1, durationMs: -1 }).durationNano, 0n, 'negative durations clamp to 0');
});

test('Tracer.span records successes and failures with their timing', async () => {
  const t = new Tracer();
  await t.span('pod', 'ok-step', async () => 1);
  await assert.rejects(t.span('pod', 'bad-step', async () => Promise.reject(new Error('nope'))));
  const spans = t.get('pod');
  assert.deepEqual(
    spans.map((s) => [s.name, s.error]),
    [
      ['ok-step', undefined],
      ['bad-step', 'nope'],
    ],
  );
  assert.ok(spans.every((s) => s.durationMs >= 0 && s.start > 1.6e12));
});

test('the tracer keeps a bounded number of keys, dropping the oldest', () => {
  const t = new Tracer(2);
  for (const k of ['a', 'b', 'c']) t.record(k, { name: k, start: 1, durationMs: 1 });
  assert.equal(t.get('a').length, 0);
  assert.equal(t.get('c').length, 1);
});

/** Just enough of a RuntimeContext for the Trace handler. */
function fakeCtx(tracer: Tracer, containers: Array<{ sandboxId: string; image: string }>): RuntimeContext {
  const sandbox = { id: 'abcdef0123', state: 'ready' };
  return {
    tracer,
    sandboxes: {
      get: (_ns: string, id: string) => (id === sandbox.id ? sandbox : undefined),
      idsWithPrefix: (_ns: string, p: string) => (sandbox.id.startsWith(p) ? [sandbox.id] : []),
    },
    containers: { list: () => containers, bySandbox: (_ns: string, id: string) => containers.filter((c) => c.sandboxId === id) },
  } as unknown as RuntimeContext;
}

const call = { namespace: 'k8s.io', signal: new AbortController().signal };

test('Trace returns the pod spans and its images pull spans, ordered by start, by id prefix', async () => {
  const t = new Tracer();
  t.record('abcdef0123', { name: 'task-start', start: 30, durationMs: 1 });
  t.record('abcdef0123', { name: 'reserve-name', start: 10, durationMs: 1 });
  recordPullSpan(t, 'reg/busybox:1', 20, 5, { bytes: 10 });
  recordPullSpan(t, 'reg/unrelated:1', 15, 5, {});
  const res = await trace(fakeCtx(t, [{ sandboxId: 'abcdef0123', image: 'reg/busybox:1' }]))({ podSandboxId: 'abcd' } as never, call);
  assert.deepEqual(
    res.spans?.map((s) => s.name),
    ['reserve-name', 'pull', 'task-start'],
  );
  assert.equal(res.spans?.[1]?.attrs?.image, 'reg/busybox:1');
  assert.equal(pullTraceKey('x'), 'pull:x');
});

test('Trace answers NotFound for an unknown pod and InvalidArgument for an empty id', async () => {
  const h = trace(fakeCtx(new Tracer(), []));
  await assert.rejects(h({ podSandboxId: 'zzz' } as never, call), (e: unknown) => e instanceof BerthError && e.kind === 'NotFound' && /zzz/.test(e.message));
  await assert.rejects(h({ podSandboxId: '' } as never, call), (e: unknown) => e instanceof BerthError && e.kind === 'InvalidArgument');
});
