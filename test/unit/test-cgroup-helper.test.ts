/**
 * The tests' cgroup helper (test/helpers/cgroup.ts) on recorded layouts of both hierarchies, so
 * its v2 branch (Debian 12's default, not this CI host's) is checked here too: a wrong v2 file
 * name or directory fails these tests. And on this host, the helper's answer agrees with the
 * rule berth-shim uses to pick v1 or v2 stats.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import {
  hierarchyAt,
  hostHierarchy,
  knobFileOfPath,
  knobFileOfPid,
  memoryLimitInside,
  readKnobOfPath,
  readKnobOfPid,
  readProcs,
  removeCgroupTree,
  removeCgroupTreeSettled,
} from '../helpers/cgroup.js';
import { isV1, locateCgroup } from '../../src/cgroup-stats.js';

const CG = '/berth-test-ab12cd/c1';

function tmp(t: TestContext): string {
  const d = mkdtempSync(join(tmpdir(), 'cg-helper-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

function files(dir: string, f: Record<string, string>): void {
  mkdirSync(dir, { recursive: true });
  for (const [name, text] of Object.entries(f)) writeFileSync(join(dir, name), text);
}

/**
 * A pure cgroup v2 host (Debian 12, kernel 6.1, systemd 252): /sys/fs/cgroup is the cgroup2
 * mount, every controller's files sit in the one directory of the container.
 */
function recordedV2Host(root: string): void {
  files(root, {
    'cgroup.controllers': 'cpuset cpu io memory hugetlb pids rdma misc\n',
    'cgroup.subtree_control': 'cpuset cpu io memory pids\n',
    'cgroup.procs': '1\n',
    'cpu.stat': 'usage_usec 9123456\nuser_usec 5000000\nsystem_usec 4123456\n',
  });
  mkdirSync(join(root, 'system.slice'));
  files(join(root, CG), {
    'cgroup.controllers': 'cpuset cpu io memory hugetlb pids rdma misc\n',
    'cgroup.procs': '4242\n4250\n',
    'cgroup.type': 'domain\n',
    'memory.max': '100663296\n',
    'memory.current': '4263936\n',
    'memory.events': 'low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n',
    'memory.swap.max': 'max\n',
    'pids.max': '1024\n',
    'pids.current': '2\n',
    'cpu.max': '50000 100000\n',
    'cpu.weight': '100\n',
  });
  // The same container with no limits set.
  files(join(root, '/berth-test-ab12cd/free'), { 'memory.max': 'max\n', 'pids.max': 'max\n', 'cpu.max': 'max 100000\n' });
}

/**
 * A hybrid host (Debian 11 style): /sys/fs/cgroup is a tmpfs with one mount per v1 controller,
 * cpu and cpuacct co-mounted (with symlinks), and the unified tree beside them.
 */
function recordedHybridHost(root: string): void {
  mkdirSync(root, { recursive: true });
  for (const d of ['blkio', 'cpu,cpuacct', 'cpuset', 'devices', 'freezer', 'memory', 'net_cls,net_prio', 'perf_event', 'pids', 'systemd', 'unified'])
    mkdirSync(join(root, d));
  for (const [link, to] of [
    ['cpu', 'cpu,cpuacct'],
    ['cpuacct', 'cpu,cpuacct'],
    ['net_cls', 'net_cls,net_prio'],
  ])
    symlinkSync(to!, join(root, link!));
  files(join(root, 'memory', CG), {
    'cgroup.procs': '4242\n4250\n',
    'memory.limit_in_bytes': '100663296\n',
    'memory.usage_in_bytes': '4263936\n',
    'memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 2\n',
  });
  files(join(root, 'pids', CG), { 'cgroup.procs': '4242\n4250\n', 'pids.max': '1024\n', 'pids.current': '2\n' });
  files(join(root, 'cpu,cpuacct', CG), {
    'cgroup.procs': '4242\n4250\n',
    'cpu.cfs_quota_us': '50000\n',
    'cpu.cfs_period_us': '100000\n',
    'cpu.shares': '512\n',
  });
  mkdirSync(join(root, 'unified', CG), { recursive: true });
  const free = '/berth-test-ab12cd/free';
  files(join(root, 'memory', free), { 'memory.limit_in_bytes': '9223372036854771712\n' });
  files(join(root, 'pids', free), { 'pids.max': 'max\n' });
  files(join(root, 'cpu,cpuacct', free), { 'cpu.cfs_quota_us': '-1\n', 'cpu.cfs_period_us': '100000\n' });
}

/** /proc/<pid>/cgroup of the container's init on each host. */
const PROC_V2 = `0::${CG}\n`;
const PROC_HYBRID = `12:pids:${CG}\n11:memory:${CG}\n6:cpu,cpuacct:${CG}\n1:name=systemd:${CG}\n0::${CG}\n`;

/**
 * The recorded hosts' container values, read both ways (by cgroup path and by pid through
 * `procText`, /proc/<pid>/cgroup): the same limits on every hierarchy, and `extra` per host.
 */
function assertRecordedKnobs(root: string, procText: string, extra: Partial<Record<Parameters<typeof readKnobOfPath>[1], bigint>>): void {
  const want = { memoryLimit: 100663296n, memoryUsage: 4263936n, pidsMax: 1024n, cpuQuota: 50000n, cpuPeriod: 100000n, ...extra };
  for (const [how, read] of [
    ['by path', (k: Parameters<typeof readKnobOfPath>[1]) => readKnobOfPath(CG, k, root)],
    ['by pid', (k: Parameters<typeof readKnobOfPath>[1]) => readKnobOfPid(4242, k, root, procText)],
  ] as const) {
    for (const [knob, value] of Object.entries(want)) assert.equal(read(knob as keyof typeof want), value, `${knob} ${how}`);
  }
}

test('v2: every knob is read from the one directory of the container, with v2 file names and formats', (t) => {
  const root = tmp(t);
  recordedV2Host(root);
  assert.equal(hierarchyAt(root), 'v2');
  const dir = join(root, CG);
  assert.equal(knobFileOfPath(CG, 'memoryLimit', root), join(dir, 'memory.max'));
  assert.equal(knobFileOfPath(CG, 'pidsMax', root), join(dir, 'pids.max'));
  assert.equal(knobFileOfPath(CG, 'cpuQuota', root), join(dir, 'cpu.max'));
  assert.equal(knobFileOfPid(4242, 'procs', root, PROC_V2), join(dir, 'cgroup.procs'));
  assertRecordedKnobs(root, PROC_V2, { pidsCurrent: 2n, oomEvents: 1n }); // oom_kill of memory.events (not oom, nor oom_group_kill)
  assert.deepEqual(readProcs(knobFileOfPid(4242, 'procs', root, PROC_V2)), [4242, 4250]);
  const free = '/berth-test-ab12cd/free';
  assert.equal(readKnobOfPath(free, 'memoryLimit', root), 'max');
  assert.equal(readKnobOfPath(free, 'pidsMax', root), 'max');
  assert.equal(readKnobOfPath(free, 'cpuQuota', root), 'max');
  assert.equal(readKnobOfPath(free, 'cpuPeriod', root), 100000n);
  assert.throws(() => knobFileOfPid(4242, 'procs', root, '1:name=systemd:/x\n'), /no unified cgroup/);
});

test('hybrid (v1 controllers beside the unified tree): knobs come from their v1 controller mounts', (t) => {
  const root = tmp(t);
  recordedHybridHost(root);
  assert.equal(hierarchyAt(root), 'v1');
  assert.equal(knobFileOfPath(CG, 'memoryLimit', root), join(root, 'memory', CG, 'memory.limit_in_bytes'));
  // cpu is the symlink to the cpu,cpuacct co-mount, as on Debian.
  assert.equal(knobFileOfPid(4242, 'cpuQuota', root, PROC_HYBRID), join(root, 'cpu', CG, 'cpu.cfs_quota_us'));
  assert.equal(knobFileOfPid(4242, 'procs', root, PROC_HYBRID), join(root, 'pids', CG, 'cgroup.procs'));
  assertRecordedKnobs(root, PROC_HYBRID, { oomEvents: 2n });
  const free = '/berth-test-ab12cd/free';
  assert.equal(readKnobOfPath(free, 'memoryLimit', root), 'max', "v1's page-counter maximum is no limit");
  assert.equal(readKnobOfPath(free, 'pidsMax', root), 'max');
  assert.equal(readKnobOfPath(free, 'cpuQuota', root), 'max', 'a quota of -1 is no limit');
  // cpu and cpuacct mounted apart (as on some hosts): the process's own line names the mount.
  const apart = tmp(t);
  files(join(apart, 'cpu', CG), { 'cpu.cfs_quota_us': '20000\n' });
  mkdirSync(join(apart, 'memory'));
  assert.equal(readKnobOfPid(1, 'cpuQuota', apart, `2:cpuacct:${CG}\n1:cpu:${CG}\n`), 20000n);
});

test('the memory limit as a container prints it, on both hierarchies, with and without a cgroup namespace', (t) => {
  const sh = (cmd: string) => execFileSync('sh', ['-c', cmd], { encoding: 'utf8' }).trim();
  const v2 = tmp(t);
  recordedV2Host(v2);
  // Without a cgroup namespace the container sees the whole tree and its own path in /proc/self/cgroup.
  writeFileSync(join(v2, 'self'), PROC_V2);
  assert.equal(sh(memoryLimitInside('v2', v2, join(v2, 'self'))), '100663296');
  // With one, its cgroup is the root of the mount and /proc/self/cgroup says "0::/".
  const ns = tmp(t);
  files(ns, { 'memory.max': '67108864\n', self: '0::/\n' });
  assert.equal(sh(memoryLimitInside('v2', ns, join(ns, 'self'))), '67108864');
  // v1: runc mounts the container's memory cgroup at /sys/fs/cgroup/memory.
  const v1 = tmp(t);
  files(join(v1, 'memory'), { 'memory.limit_in_bytes': '100663296\n' });
  assert.equal(sh(memoryLimitInside('v1', v1)), '100663296');
});

test('removeCgroupTree removes the parent from a pure v2 root, every v1 controller and the unified tree', async (t) => {
  const v2 = tmp(t);
  writeFileSync(join(v2, 'cgroup.controllers'), 'cpu memory pids\n');
  mkdirSync(join(v2, CG), { recursive: true });
  mkdirSync(join(v2, 'system.slice'));
  assert.deepEqual(removeCgroupTree('/berth-test-ab12cd', v2), []);
  assert.equal(existsSync(join(v2, 'berth-test-ab12cd')), false, 'the v2 cgroup under the root itself is removed');
  assert.equal(existsSync(join(v2, 'system.slice')), true);

  const hy = tmp(t);
  for (const c of ['memory', 'pids', 'cpu,cpuacct', 'unified']) mkdirSync(join(hy, c, CG), { recursive: true });
  symlinkSync('cpu,cpuacct', join(hy, 'cpu'));
  // A cgroup that still has a process cannot go (a fake one here: a file in it).
  writeFileSync(join(hy, 'pids', CG, 'busy'), '');
  assert.deepEqual(await removeCgroupTreeSettled('/berth-test-ab12cd', 100, hy), [join(hy, 'pids', CG), join(hy, 'pids', 'berth-test-ab12cd')]);
  for (const c of ['memory', 'cpu,cpuacct', 'unified']) assert.equal(existsSync(join(hy, c, 'berth-test-ab12cd')), false, c);
});

test("on this host the helper's hierarchy is the one berth-shim picks for a process here", () => {
  // berth-shim reads v1 stats when the process has a v1 memory cgroup (src/cgroup-stats.ts).
  const shimSays = isV1(locateCgroup(process.pid)) ? 'v1' : 'v2';
  assert.equal(hostHierarchy(), shimSays);
});
