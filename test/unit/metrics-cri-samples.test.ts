import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import * as V1 from '../../src/api/cgroups/stats/v1/metrics_pb.js';
import * as V2 from '../../src/api/cgroups/cgroup2/stats/metrics_pb.js';
import {
  CpuRates,
  TaskSamples,
  sampleFromMetrics,
  sumSamples,
  filterContainers,
  cpuAndMemory,
  listContainerStats,
} from '../../src/cri/observe/container-stats.js';
import { listPodSandboxStats } from '../../src/cri/observe/sandbox-stats.js';
import { nowNanos, type RuntimeContext } from '../../src/cri/server/runtime-context.js';
import type { ContainerStats, PodSandboxStats } from '../../src/api/cri/runtime/v1/api_pb.js';
import { parseNetDev } from '../../src/cri/observe/sandbox-stats.js';
import { METRIC_DESCRIPTORS, containerMetrics } from '../../src/cri/observe/metrics-cri.js';
import type { ContainerRecord } from '../../src/core/metadata/records.js';

test('a cgroup v1 sample: working set is usage minus inactive file; huge limits mean none', () => {
  const m = create(V1.MetricsSchema, {
    cpu: { usage: { total: 5_000_000_000n } },
    memory: {
      usage: { usage: 100n << 20n, limit: 0x7ffffffffffff000n },
      totalInactiveFile: 30n << 20n,
      totalRss: 60n << 20n,
      totalPgFault: 7n,
      totalPgMajFault: 1n,
    },
    pids: { current: 3n },
  });
  const s = sampleFromMetrics({ cgroup: 'v1', metrics: m }, 42n);
  assert.equal(s.cpuNanos, 5_000_000_000n);
  assert.equal(s.workingSet, 70n << 20n);
  assert.equal(s.rss, 60n << 20n);
  assert.equal(s.limit, undefined);
  assert.equal(s.pids, 3n);
  assert.equal(s.pageFaults, 7n);
});

test('a cgroup v2 sample converts usec to ns and keeps a real limit; available = limit - working set', () => {
  const m = create(V2.MetricsSchema, {
    cpu: { usageUsec: 2000n },
    memory: { usage: 50n, inactiveFile: 80n, usageLimit: 1000n, anon: 40n },
    pids: { current: 1n },
  });
  const s = sampleFromMetrics({ cgroup: 'v2', metrics: m }, 1n);
  assert.equal(s.cpuNanos, 2_000_000n);
  assert.equal(s.workingSet, 0n, 'never negative');
  assert.equal(s.limit, 1000n);
  assert.equal(cpuAndMemory(s, undefined).memory?.availableBytes?.value, 1000n);
});

test('the CPU rate is the usage delta over the time delta, absent on the first sample or a reset', () => {
  const r = new CpuRates();
  const base = { memUsage: 0n, workingSet: 0n, rss: 0n, pageFaults: 0n, majorFaults: 0n, limit: undefined, pids: 0n };
  assert.equal(r.rate('c', { ...base, timestamp: 1_000_000_000n, cpuNanos: 0n }), undefined);
  // Half a core over two seconds.
  assert.equal(r.rate('c', { ...base, timestamp: 3_000_000_000n, cpuNanos: 1_000_000_000n }), 500_000_000n);
  assert.equal(r.rate('c', { ...base, timestamp: 4_000_000_000n, cpuNanos: 10n }), undefined, 'counter went back: no rate');
});

test('pod samples sum their containers', () => {
  const one = { timestamp: 1n, cpuNanos: 1n, memUsage: 2n, workingSet: 3n, rss: 4n, pageFaults: 5n, majorFaults: 6n, limit: 9n, pids: 1n };
  const s = sumSamples([one, one], 7n);
  assert.deepEqual([s.timestamp, s.cpuNanos, s.memUsage, s.workingSet, s.pids, s.limit], [7n, 2n, 4n, 6n, 2n, undefined]);
});

test('/proc/net/dev parses rx/tx bytes and errors per interface', () => {
  const text = [
    'Inter-|   Receive                                                |  Transmit',
    ' face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed',
    '    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0',
    '  eth0:    5000      10    2    0    0     0          0         0     3000       8    1    0    0     0       0          0',
  ].join('\n');
  assert.deepEqual(parseNetDev(text), [
    { name: 'lo', rxBytes: 100n, rxErrors: 0n, txBytes: 100n, txErrors: 0n },
    { name: 'eth0', rxBytes: 5000n, rxErrors: 2n, txBytes: 3000n, txErrors: 1n },
  ]);
});

test('container stats filters match id and sandbox prefixes and every selector label', () => {
  const mk = (id: string, sandboxId: string, labels: Record<string, string>) => ({ id, sandboxId, labels }) as unknown as ContainerRecord;
  const list = [mk('aaa1', 'p1', { app: 'x' }), mk('bbb2', 'p1', { app: 'y' }), mk('ccc3', 'p2', { app: 'x', tier: 'z' })];
  const ids = (f: object | undefined) => filterContainers(list, f as never).map((c) => c.id);
  assert.deepEqual(ids(undefined), ['aaa1', 'bbb2', 'ccc3']);
  assert.deepEqual(ids({ id: 'bb', podSandboxId: '', labelSelector: {} }), ['bbb2']);
  assert.deepEqual(ids({ id: '', podSandboxId: 'p1', labelSelector: { app: 'x' } }), ['aaa1']);
  assert.deepEqual(ids({ id: '', podSandboxId: '', labelSelector: { app: 'x', tier: 'z' } }), ['ccc3']);
});

test('every container metric has a descriptor and as many label values as label keys', () => {
  const s = { timestamp: 1n, cpuNanos: 3_500_000_000n, memUsage: 2n, workingSet: 3n, rss: 4n, pageFaults: 5n, majorFaults: 6n, limit: undefined, pids: 1n };
  const ms = containerMetrics(s, ['c', 'p', 'ns']);
  for (const m of ms) {
    const d = METRIC_DESCRIPTORS.find((x) => x.name === m.name);
    assert.ok(d, `descriptor for ${m.name}`);
    assert.equal(m.labelValues?.length, d.labelKeys.length);
  }
  assert.equal(ms.find((m) => m.name === 'container_cpu_usage_seconds_total')?.value?.value, 3n);
  for (const n of [
    'container_network_receive_bytes_total',
    'container_network_transmit_bytes_total',
    'container_memory_working_set_bytes',
    'container_processes',
  ]) {
    assert.ok(
      METRIC_DESCRIPTORS.some((d) => d.name === n),
      n,
    );
  }
});

test('the same sample seen again keeps the rate it got the first time', () => {
  const r = new CpuRates();
  const base = { memUsage: 0n, workingSet: 0n, rss: 0n, pageFaults: 0n, majorFaults: 0n, limit: undefined, pids: 0n };
  r.rate('c', { ...base, timestamp: 1_000_000_000n, cpuNanos: 0n });
  const again = { ...base, timestamp: 3_000_000_000n, cpuNanos: 1_000_000_000n };
  assert.equal(r.rate('c', again), 500_000_000n);
  assert.equal(r.rate('c', { ...again }), 500_000_000n, 'a shared sample read by a second call');
});

test('TaskSamples: calls within the window share one reading (also while it is in flight); later calls read again', async () => {
  let clock = 0;
  const samples = new TaskSamples(1000, () => clock);
  let reads = 0;
  const take = async () => {
    reads++;
    await new Promise((r) => setTimeout(r, 5));
    return { timestamp: BigInt(reads), cpuNanos: 0n, memUsage: 0n, workingSet: 0n, rss: 0n, pageFaults: 0n, majorFaults: 0n, limit: undefined, pids: 0n };
  };
  const [a, b] = await Promise.all([samples.get('k', take), samples.get('k', take)]);
  assert.equal(reads, 1);
  assert.equal(a, b);
  clock = 999;
  assert.equal(await samples.get('k', take), a);
  assert.notEqual(await samples.get('other', take), a, 'another task reads its own');
  clock = 2001;
  assert.equal((await samples.get('k', take))?.timestamp, 3n, 'past the window: a new reading');
  assert.equal(reads, 3);
});

test('ListContainerStats then ListPodSandboxStats: one shim Stats per task, and both report the same CPU rate', async () => {
  let statsCalls = 0;
  let cpu = 0n;
  const containers = [1, 2, 3].map((i) => ({
    id: `c${i}`,
    sandboxId: 'p1',
    state: 'running',
    pid: 100 + i,
    meta: { name: `c${i}`, attempt: 0 },
    labels: {},
    annotations: {},
  }));
  const pod = { id: 'p1', state: 'ready', meta: { name: 'p', namespace: 'default', uid: 'u', attempt: 0 }, labels: {}, annotations: {} };
  const ctx = {
    containers: { list: () => containers, bySandbox: (_ns: string, id: string) => containers.filter((c) => c.sandboxId === id) },
    sandboxes: { list: () => [pod] },
    tasks: {
      stats: async () => {
        statsCalls++;
        cpu += 1_000_000_000n;
        return { cgroup: 'v1', metrics: { cpu: { usage: { total: cpu } }, memory: { usage: { usage: 10n, limit: 0n } } } };
      },
    },
    snapshotter: { root: '/x', usage: async () => ({ size: 1, inodes: 1 }) },
    log: { debug: () => undefined, warn: () => undefined },
    cpuRates: new CpuRates(),
    taskSamples: new TaskSamples(),
  } as unknown as RuntimeContext;
  const call = { namespace: 'k8s.io' } as unknown as Parameters<ReturnType<typeof listContainerStats>>[1];
  const list = listContainerStats(ctx);
  const pods = listPodSandboxStats(ctx);
  await list({ $typeName: 'runtime.v1.ListContainerStatsRequest' } as never, call);
  await pods({ $typeName: 'runtime.v1.ListPodSandboxStatsRequest' } as never, call);
  assert.equal(statsCalls, 3, 'three running containers, three shim Stats calls for both RPCs');
  // A second round (the window past) reads again; the rate of a container is the same in both RPCs.
  (ctx.taskSamples as unknown as { recent: Map<string, unknown> }).recent.clear();
  const c2 = (await list({ $typeName: 'runtime.v1.ListContainerStatsRequest' } as never, call)).stats as ContainerStats[];
  const p2 = (await pods({ $typeName: 'runtime.v1.ListPodSandboxStatsRequest' } as never, call)).stats as PodSandboxStats[];
  assert.equal(statsCalls, 6);
  const rateOf = (id: string, list: ContainerStats[]) => list.find((s) => s.attributes?.id === id)?.cpu?.usageNanoCores?.value;
  assert.notEqual(rateOf('c1', c2), undefined, 'a rate from the first round to the second');
  assert.equal(rateOf('c1', p2[0]!.linux!.containers), rateOf('c1', c2));
});

test('nowNanos is strictly increasing (a CPU rate over two samples in one millisecond is never a reset)', () => {
  let prev = nowNanos();
  let backwards = 0;
  for (let i = 0; i < 200_000; i++) {
    const t = nowNanos();
    if (t <= prev) backwards++;
    prev = t;
  }
  assert.equal(backwards, 0);
  const wall = BigInt(Date.now()) * 1_000_000n;
  assert.ok(prev - wall < 1_000_000_000n && wall - prev < 1_000_000_000n, 'and it is wall-clock time');
});
