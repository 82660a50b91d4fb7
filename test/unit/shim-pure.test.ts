/**
 * The shim's pure building blocks (no runc, no root): flag parsing, the
 * shim protocol's paths and stdin URIs, oom_score_adj clamping, runc error classification, /proc/<pid>/cgroup parsing,
 * bind mount normalisation and the process state machine.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFlags } from '../../src/shim/cli.js';
import { shimSocketPath, shimStateDir, attachSocketPath, attachStdin, parseAttachStdin, conmonCuuid } from '../../src/shim-protocol.js';
import { clampOomScoreAdj, hasCapSysResource, classifyRuncError, readErrorsSince } from '../../src/shim/runc.js';
import { parseProcCgroup, parseKv } from '../../src/cgroup-stats.js';
import { normalizeMount } from '../../src/shim/rootfs.js';
import { parseStdioUri } from '../../src/shim/bridge.js';
import { Proc, canTransition } from '../../src/shim/process.js';
import { decodeWaitStatus } from '../../src/shim/libc.js';
import { isBerthError } from '../../src/errors.js';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';

test('flags: Go style single and double dash, = form, action anywhere after flags', () => {
  const f = parseFlags(['-namespace', 'k8s.io', '--id=abc', '-address', '/run/c.sock', '-debug', 'start'], {});
  assert.equal(f.namespace, 'k8s.io');
  assert.equal(f.id, 'abc');
  assert.equal(f.address, '/run/c.sock');
  assert.equal(f.debug, true);
  assert.equal(f.action, 'start');
  assert.throws(() => parseFlags(['-bogus', 'x'], {}), /not defined: -bogus/);
  assert.throws(() => parseFlags(['-id'], {}), /needs an argument/);
  assert.equal(parseFlags(['delete'], { NAMESPACE: 'envns' }).namespace, 'envns');
});

test('shim protocol: one socket per namespace, short attach paths, stdin URIs', () => {
  assert.equal(shimSocketPath('/d', 'k8s.io'), '/d/k8s.io.sock');
  assert.notEqual(shimSocketPath('/d', 'ns1'), shimSocketPath('/d', 'ns2'));
  assert.equal(shimStateDir('/run/containerd/containerd.sock', {}), '/run/containerd/s/berth');
  assert.equal(shimStateDir('', {}), '/run/berth/s');
  assert.equal(shimStateDir('', { BERTH_SHIM_STATE_DIR: '/x' }), '/x');
  // The attach socket path must fit sun_path (108) even under a long temp state dir.
  const long = '/tmp/berthd-test-abcdef/state/s';
  assert.ok(attachSocketPath(long, 'k8s.io', 'a'.repeat(64), 'e'.repeat(64)).length < 108);
  assert.notEqual(conmonCuuid('ns', 'c1'), conmonCuuid('ns', 'c1', 'x'));
  assert.notEqual(conmonCuuid('ns1', 'c1'), conmonCuuid('ns2', 'c1'));
  assert.deepEqual(parseAttachStdin(attachStdin(true)), { once: true });
  assert.deepEqual(parseAttachStdin(attachStdin(false)), { once: false });
  assert.equal(parseAttachStdin('/run/x/stdin'), undefined);
  assert.equal(parseAttachStdin('attach://stdout'), undefined);
});

test('oom_score_adj is raised to our own value only when we cannot lower it', () => {
  const c1 = { process: { oomScoreAdj: -998 } };
  assert.equal(clampOomScoreAdj(c1, 0, false), 0);
  assert.equal(c1.process.oomScoreAdj, 0);
  const c2 = { process: { oomScoreAdj: -998 } };
  assert.equal(clampOomScoreAdj(c2, 0, true), undefined);
  assert.equal(c2.process.oomScoreAdj, -998);
  const c3 = { process: { oomScoreAdj: 500 } };
  assert.equal(clampOomScoreAdj(c3, 0, false), undefined);
  assert.equal(clampOomScoreAdj({ process: {} }, 0, false), undefined);
  assert.equal(hasCapSysResource('CapEff:\t000001fffeffffff\n'), false);
  assert.equal(hasCapSysResource('CapEff:\t000001ffffffffff\n'), true);
});

test('runc error text maps onto error kinds', () => {
  assert.equal(classifyRuncError('container does not exist'), 'NotFound');
  assert.equal(classifyRuncError('cannot start a container that has stopped'), 'FailedPrecondition');
  assert.equal(classifyRuncError('container "x" already exists'), 'AlreadyExists');
  assert.equal(classifyRuncError('unable to start container process: exec: "x": no such file'), 'Internal');
});

test('runc json log: only error entries written after the offset are returned', () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-runclog-'));
  try {
    const f = join(dir, 'log.json');
    const old = JSON.stringify({ level: 'error', msg: 'old failure' }) + '\n';
    writeFileSync(f, old + JSON.stringify({ level: 'warning', msg: 'w' }) + '\n' + JSON.stringify({ level: 'error', msg: 'new failure' }) + '\n{"level":"err');
    assert.equal(readErrorsSince(f, Buffer.byteLength(old)), 'new failure');
    assert.equal(readErrorsSince(join(dir, 'missing'), 0), '');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('/proc/<pid>/cgroup parsing finds v1 controllers and the unified path', () => {
  const loc = parseProcCgroup('4:memory:/a/b\n2:cpu,cpuacct:/a/b\n1:name=systemd:/a\n0::/u/v\n', '/nonexistent-root');
  assert.equal(loc.v1.get('memory'), '/nonexistent-root/memory/a/b');
  assert.equal(loc.v1.get('cpuacct'), '/nonexistent-root/cpu,cpuacct/a/b');
  assert.equal(loc.v1.get('systemd'), '/nonexistent-root/systemd/a');
  assert.equal(loc.v2, '/nonexistent-root/u/v');
  assert.deepEqual(
    [...parseKv('a 1\nb x\nc 3\n')],
    [
      ['a', 1n],
      ['c', 3n],
    ],
  );
});

test('bind mounts without a bind option are normalised to bind mounts', () => {
  assert.deepEqual(normalizeMount({ type: 'bind', source: '/s', options: ['ro'] }).options, ['bind', 'ro']);
  assert.deepEqual(normalizeMount({ type: 'bind', source: '/s', options: ['rbind', 'ro'] }).options, ['rbind', 'ro']);
  const overlay = { type: 'overlay', source: 'overlay', options: ['lowerdir=/l'] };
  assert.equal(normalizeMount(overlay), overlay);
});

test('stdio URIs: FIFO paths and file://; binary:// and unknown schemes rejected', () => {
  assert.deepEqual(parseStdioUri(''), { kind: 'none' });
  assert.deepEqual(parseStdioUri('/run/x/stdout'), { kind: 'fifo', path: '/run/x/stdout' });
  assert.deepEqual(parseStdioUri('file:///var/log/pods/a%20b/0.log'), { kind: 'file', path: '/var/log/pods/a b/0.log' });
  assert.throws(
    () => parseStdioUri('binary:///usr/bin/logger?id=1'),
    (e: unknown) => isBerthError(e, 'InvalidArgument'),
  );
  assert.throws(
    () => parseStdioUri('http://x/'),
    (e: unknown) => isBerthError(e, 'InvalidArgument'),
  );
});

test('process state machine rejects invalid transitions and releases waiters on exit', async () => {
  assert.equal(canTransition('created', 'running'), true);
  assert.equal(canTransition('stopped', 'running'), false);
  assert.equal(canTransition('deleted', 'created'), false);
  const p = new Proc('c', '', { stdin: '', stdout: '', stderr: '', terminal: false });
  assert.throws(
    () => p.transition('paused'),
    (e: unknown) => isBerthError(e, 'FailedPrecondition'),
  );
  assert.throws(() => p.require('pause', 'running'), /cannot pause container c: it is created/);
  p.transition('running');
  const w = p.wait();
  const at = new Date();
  p.setExited(3, at);
  p.setExited(9, new Date()); // the first exit wins
  assert.deepEqual(await w, { status: 3, exitedAt: at });
  assert.equal(p.state, 'stopped');
  const ac = new AbortController();
  const q = new Proc('c', 'e', { stdin: '', stdout: '', stderr: '', terminal: false });
  const qw = q.wait(ac.signal);
  ac.abort();
  await assert.rejects(qw);
});

test('wait status decoding: exit codes and 128+signal', () => {
  assert.equal(decodeWaitStatus(7 << 8), 7);
  assert.equal(decodeWaitStatus(9), 137);
  assert.equal(decodeWaitStatus(15), 143);
});
