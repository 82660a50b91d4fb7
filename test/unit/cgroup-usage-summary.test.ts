/**
 * The CRI stats' cgroup summary that berthd reads itself (usageSummary, TaskManager.stats with
 * `summary`): from recorded v1 and v2 cgroup files it must give the same CRI sample as the full
 * metrics the shim's Stats returns, and TaskManager must read it from the cgroup berth-shim
 * recorded in the bundle, falling back to the shim when the bundle has no such record.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { parseProcCgroup, statsV1, statsV2, usageSummary, cgroupExists } from '../../src/cgroup-stats.js';
import { packAny } from '../../src/ttrpc/pb.js';
import { V1MetricsS, V2MetricsS } from '../../src/shim/task-api.js';
import { decodeMetrics, type TaskMetrics } from '../../src/runtime/stats.js';
import { MetricsSchema as V1MetricsSchema } from '../../src/api/cgroups/stats/v1/metrics_pb.js';
import { MetricsSchema as V2MetricsSchema } from '../../src/api/cgroups/cgroup2/stats/metrics_pb.js';
import { sampleFromMetrics } from '../../src/cri/observe/container-stats.js';
import { TaskManager } from '../../src/runtime/task-manager.js';
import { CGROUP_FILE } from '../../src/shim-protocol.js';
import { recordedV2 } from '../helpers/cgroup.js';

function write(dir: string, files: Record<string, string>): void {
  mkdirSync(dir, { recursive: true });
  for (const [f, text] of Object.entries(files)) writeFileSync(join(dir, f), text);
}

function tmp(t: { after(fn: () => void): void }, prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

const summaryMetrics = (s: ReturnType<typeof usageSummary>): TaskMetrics =>
  s.cgroup === 'v1'
    ? { cgroup: 'v1', metrics: create(V1MetricsSchema, s.metrics as MessageInitShape<typeof V1MetricsSchema>) }
    : { cgroup: 'v2', metrics: create(V2MetricsSchema, s.metrics as MessageInitShape<typeof V2MetricsSchema>) };

test('v2: the summary gives the same CRI sample as the shim full Stats', (t) => {
  const root = tmp(t, 'cgsum2-');
  recordedV2(join(root, 'kubepods/pod1/ctr1'));
  const loc = parseProcCgroup('0::/kubepods/pod1/ctr1\n', root);
  assert.equal(cgroupExists(loc), true);
  const full = sampleFromMetrics(decodeMetrics(packAny(V2MetricsS, statsV2(loc)) as never), 1n);
  const summary = sampleFromMetrics(summaryMetrics(usageSummary(loc)), 1n);
  assert.deepEqual(summary, full);
  assert.equal(summary.cpuNanos, 1234567000n);
  assert.equal(summary.workingSet, 10485760n - 1048576n);
  assert.equal(summary.limit, 67108864n);
  assert.equal(summary.pids, 3n);
});

test('v1 (hybrid, cpu,cpuacct co-mounted): the summary gives the same CRI sample as the full Stats, an unlimited limit included', (t) => {
  const root = tmp(t, 'cgsum1-');
  const path = '/kubepods/besteffort/pod1/ctr1';
  write(join(root, 'memory', path), {
    'memory.stat':
      'cache 8192\nrss 4096\ninactive_file 100\npgfault 7\npgmajfault 1\ntotal_cache 8192\ntotal_rss 40960\ntotal_inactive_file 2048\ntotal_pgfault 70\ntotal_pgmajfault 3\n',
    'memory.usage_in_bytes': '65536\n',
    'memory.limit_in_bytes': '9223372036854771712\n',
    'memory.max_usage_in_bytes': '70000\n',
    'memory.failcnt': '0\n',
  });
  write(join(root, 'cpu,cpuacct', path), {
    'cpuacct.usage': '987654321\n',
    'cpuacct.stat': 'user 10\nsystem 5\n',
    'cpuacct.usage_percpu': '1 2\n',
    'cpu.stat': 'nr_periods 0\n',
  });
  write(join(root, 'pids', path), { 'pids.current': '2\n', 'pids.max': '100\n' });
  write(join(root, 'unified', path), {});
  const loc = parseProcCgroup(`12:pids:${path}\n5:cpu,cpuacct:${path}\n4:memory:${path}\n0::${path}\n`, root);
  const full = sampleFromMetrics(decodeMetrics(packAny(V1MetricsS, statsV1(loc)) as never), 1n);
  const summary = sampleFromMetrics(summaryMetrics(usageSummary(loc)), 1n);
  assert.deepEqual(summary, full);
  assert.equal(summary.cpuNanos, 987654321n);
  assert.equal(summary.rss, 40960n);
  assert.equal(summary.workingSet, 65536n - 2048n);
  assert.equal(summary.limit, undefined);
  assert.equal(summary.pids, 2n);
});

test('TaskManager.stats with summary reads the cgroup recorded in the bundle, without a shim; otherwise it asks the shim', async (t) => {
  const state = tmp(t, 'cgsum-state-');
  const root = tmp(t, 'cgsum-root-');
  const tm = new TaskManager({ stateDir: state, rootDir: root, handlers: {} });
  const bundle = join(state, 'tasks', 'k8s.io', 'c1');
  mkdirSync(bundle, { recursive: true });
  // This test process's own cgroup stands for a container's: real kernel files.
  writeFileSync(join(bundle, CGROUP_FILE), readFileSync('/proc/self/cgroup', 'utf8'));
  const loc = parseProcCgroup(readFileSync('/proc/self/cgroup', 'utf8'));
  if (!cgroupExists(loc)) {
    t.skip('this process has no readable memory cgroup');
    return;
  }
  const m = await tm.stats('k8s.io', 'c1', { summary: true });
  const sample = sampleFromMetrics(m, 1n);
  assert.ok(sample.cpuNanos > 0n, 'the CPU time of a running process is counted');
  assert.ok(sample.memUsage > 0n, 'so is its memory');
  // Without the record (or without `summary`) there is no shim to ask: the call fails.
  await assert.rejects(tm.stats('k8s.io', 'c1'));
  rmSync(join(bundle, CGROUP_FILE));
  await assert.rejects(tm.stats('k8s.io', 'c1', { summary: true }));
  // A record whose cgroup is gone (the container was deleted) is not read either.
  writeFileSync(join(bundle, CGROUP_FILE), '0::/berth-test-no-such-cgroup\n4:memory:/berth-test-no-such-cgroup\n');
  await assert.rejects(tm.stats('k8s.io', 'c1', { summary: true }));
});
