import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, openSync, writeSync, closeSync, constants } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { ContainerConfigSchema, PodSandboxConfigSchema } from '../../src/api/cri/runtime/v1/api_pb.js';
import { containerName, targetPid } from '../../src/cri/container/create.js';
import { isBerthError } from '../../src/errors.js';
import { exitReason, dateToNanos } from '../../src/cri/container/lifecycle.js';
import { DaemonLogForwarder } from '../../src/cri/container/io.js';
import { until } from '../helpers/process.js';
import { currentCapabilities, statDevice, lookupPropagation } from '../../src/cri/container/host.js';

test('container names follow k8s_<container>_<pod>_<namespace>_<uid>_<attempt>', () => {
  const c = create(ContainerConfigSchema, { metadata: { name: 'web', attempt: 2 } });
  const p = create(PodSandboxConfigSchema, { metadata: { name: 'pod', namespace: 'ns', uid: 'u1', attempt: 0 } });
  assert.equal(containerName(c, p), 'k8s_web_pod_ns_u1_2');
});

test('exit reasons: OOMKilled wins, Completed for 0, Error otherwise', () => {
  assert.equal(exitReason(0, false), 'Completed');
  assert.equal(exitReason(1, false), 'Error');
  assert.equal(exitReason(137, true), 'OOMKilled');
  assert.equal(exitReason(0, true), 'OOMKilled');
});

test('exit times convert to nanoseconds; a missing time becomes now', () => {
  assert.equal(dateToNanos(new Date(1_700_000_000_123)), 1_700_000_000_123_000_000n);
  const now = BigInt(Date.now()) * 1_000_000n;
  assert.ok(dateToNanos(undefined) >= now);
});

test('statDevice reports /dev/null as char 1:3 and rejects regular files', () => {
  const d = statDevice('/dev/null');
  assert.deepEqual(d && { type: d.type, major: d.major, minor: d.minor }, { type: 'c', major: 1, minor: 3 });
  assert.equal(statDevice('/etc/hostname'), undefined);
  assert.equal(statDevice('/nonexistent/dev'), undefined);
});

test('propagation lookup finds the mount holding a path, as /proc/self/mountinfo says', () => {
  // Expected values read independently: the longest mount point holding the path, and its
  // optional fields (shared:N → shared, master:N alone → slave, none → private).
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const f = l.split(' ');
      const sep = f.indexOf('-');
      const opt = f.slice(6, sep);
      return { point: f[4]!, kind: opt.some((o) => o.startsWith('shared:')) ? 'shared' : opt.some((o) => o.startsWith('master:')) ? 'slave' : 'private' };
    });
  // Stacked mounts at one point: the last one listed is the one a path resolves through.
  const expect = (path: string): string =>
    [...mounts]
      .reverse()
      .filter((m) => path === m.point || path.startsWith(m.point === '/' ? '/' : `${m.point}/`))
      .sort((a, b) => b.point.length - a.point.length)[0]!.kind;
  for (const p of ['/', '/proc', '/sys', '/tmp', '/dev/shm']) assert.equal(lookupPropagation(p), expect(p), p);
});

test('current capabilities are the ones berthd holds (CapEff)', () => {
  const caps = currentCapabilities();
  const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]!;
  const mask = BigInt(`0x${hex}`);
  assert.equal(caps.includes('CAP_CHOWN'), (mask & 1n) === 1n);
  assert.equal(caps.includes('CAP_SYS_RESOURCE'), ((mask >> 24n) & 1n) === 1n);
});

test('the daemon log forwarder turns FIFO output into CRI records, including an unterminated tail', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-fwd-unit-'));
  try {
    const out = join(dir, 'stdout');
    const err = join(dir, 'stderr');
    execFileSync('mkfifo', [out, err]);
    const log = join(dir, 'c.log');
    writeFileSync(log, '');
    const f = await DaemonLogForwarder.start({ stdout: out, stderr: err }, log);
    for (const [p, text] of [
      [out, 'a\nb'],
      [err, 'e1\n'],
    ] as const) {
      const fd = openSync(p, constants.O_WRONLY);
      writeSync(fd, text);
      closeSync(fd);
    }
    // The whole lines are forwarded as they come; the unterminated 'b' is flushed by finish().
    await until(() => /stdout F a\n/.test(readFileSync(log, 'utf8')) && /stderr F e1\n/.test(readFileSync(log, 'utf8')), 'the complete lines in the log');
    await f.finish();
    const lines = readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split(' ').slice(1).join(' '));
    assert.deepEqual(lines.sort(), ['stderr F e1', 'stdout F a', 'stdout F b']);
    await f.finish(); // idempotent
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a TARGET pid namespace must be a running container of the same pod', () => {
  const records: Record<string, { sandboxId: string; state: string; pid: number }> = {
    mine: { sandboxId: 'pod-a', state: 'running', pid: 4242 },
    theirs: { sandboxId: 'pod-b', state: 'running', pid: 4343 },
  };
  const ctx = { containers: { get: (_ns: string, id: string) => records[id] } } as unknown as Parameters<typeof targetPid>[0];
  const cfg = (targetId: string) => create(ContainerConfigSchema, { linux: { securityContext: { namespaceOptions: { targetId } } } });
  assert.equal(targetPid(ctx, 'k8s.io', cfg('mine'), 'pod-a'), 4242);
  assert.throws(
    () => targetPid(ctx, 'k8s.io', cfg('theirs'), 'pod-a'),
    (e) => isBerthError(e, 'InvalidArgument') && /target_id: container theirs belongs to another pod/.test(e.message),
  );
  assert.throws(
    () => targetPid(ctx, 'k8s.io', cfg('gone'), 'pod-a'),
    (e) => isBerthError(e, 'NotFound'),
  );
  assert.equal(targetPid(ctx, 'k8s.io', cfg(''), 'pod-a'), undefined);
});
