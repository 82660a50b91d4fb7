/**
 * cgroup v2 (Debian 12's default: the unified hierarchy only): the shim's stats and OOM counter
 * read from recorded cgroup v2 files (as a 6.x kernel writes them), encoded with the lean
 * table, and decoded by berthd as io.containerd.cgroups.v2.Metrics.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isV1, oomKillCount, parseProcCgroup, statsV2 } from '../../src/cgroup-stats.js';
import { recordedV2 } from '../helpers/cgroup.js';
import { packAny } from '../../src/ttrpc/pb.js';
import { V2MetricsS } from '../../src/shim/task-api.js';
import { decodeMetrics } from '../../src/runtime/stats.js';

test('a v2-only /proc/<pid>/cgroup maps to the unified directory and no v1 controller', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'cg2-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const loc = parseProcCgroup('0::/kubepods/pod1/ctr1\n', root);
  assert.equal(loc.v2, join(root, 'kubepods/pod1/ctr1'));
  assert.equal(loc.v1.size, 0);
  assert.equal(isV1(loc), false);
});

test('statsV2 reads cpu, memory, pids and memory.events; oomKillCount reads memory.events oom_kill', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'cg2-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const dir = join(root, 'kubepods/pod1/ctr1');
  recordedV2(dir);
  const loc = parseProcCgroup('0::/kubepods/pod1/ctr1\n', root);
  assert.equal(oomKillCount(loc), 1n);
  const m = statsV2(loc) as {
    cpu: { usageUsec: bigint; nrThrottled: bigint };
    memory: { usage: bigint; usageLimit: bigint; anon: bigint; swapLimit: bigint; pgmajfault: bigint; inactiveFile: bigint };
    pids: { current: bigint; limit: bigint };
    memoryEvents: { max: bigint; oomKill: bigint };
  };
  assert.equal(m.cpu.usageUsec, 1234567n);
  assert.equal(m.cpu.nrThrottled, 2n);
  assert.equal(m.memory.usage, 10485760n);
  assert.equal(m.memory.usageLimit, 67108864n);
  assert.equal(m.memory.swapLimit, 0xffffffffffffffffn, '"max" is no limit');
  assert.equal(m.memory.anon, 4194304n);
  assert.equal(m.memory.inactiveFile, 1048576n);
  assert.equal(m.memory.pgmajfault, 6n);
  assert.deepEqual(m.pids, { current: 3n, limit: 0n });
  assert.equal(m.memoryEvents.max, 3n);
  assert.equal(m.memoryEvents.oomKill, 1n);

  // What berthd decodes from the shim's Stats answer.
  const any = packAny(V2MetricsS, m);
  const d = decodeMetrics({ $typeName: 'google.protobuf.Any', typeUrl: any.typeUrl, value: any.value } as never);
  assert.equal(d.cgroup, 'v2');
  if (d.cgroup !== 'v2') return;
  assert.equal(d.metrics.cpu?.usageUsec, 1234567n);
  assert.equal(d.metrics.memory?.usage, 10485760n);
  assert.equal(d.metrics.memory?.inactiveFile, 1048576n);
  assert.equal(d.metrics.memoryEvents?.oomKill, 1n);
  assert.equal(d.metrics.pids?.current, 3n);
});

test('a v2 cgroup with files missing (a controller not enabled) reads as zeros, never throws', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'cg2-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'c'), { recursive: true });
  const loc = parseProcCgroup('0::/c\n', root);
  assert.equal(oomKillCount(loc), 0n);
  const m = statsV2(loc) as { memory: { usage: bigint }; cpu: { usageUsec: bigint } };
  assert.equal(m.memory.usage, 0n);
  assert.equal(m.cpu.usageUsec, 0n);
});
