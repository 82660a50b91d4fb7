/**
 * Wire compatibility with Go's containerd/ttrpc: our client talks to Debian's
 * containerd-shim-runc-v2 (a Go ttrpc server) and gets the codes Go produces.
 * Skipped when the shim binary is not installed.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, openSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { TtrpcClient } from '../../src/ttrpc/client.js';
import { isBerthError } from '../../src/errors.js';

const SHIM = '/usr/bin/containerd-shim-runc-v2';
const TASK = 'containerd.task.v2.Task';

/** Starts the Go shim in serve mode on a socket in a temp dir; everything is removed after the test. */
async function startGoShim(t: TestContext): Promise<{ path: string; child: ChildProcess }> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-ttrpc-go-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // The shim writes its log into a FIFO named "log" in its working directory. Opening it
  // read-write never blocks, and libuv then reads it asynchronously.
  assert.equal(spawnSync('mkfifo', [join(dir, 'log')]).status, 0);
  const logPipe = new net.Socket({ fd: openSync(join(dir, 'log'), 'r+'), readable: true, writable: false });
  logPipe.resume();
  t.after(() => logPipe.destroy());

  const path = join(dir, 'shim.sock');
  const child = spawn(SHIM, ['-namespace', 'berthtest', '-id', 'interop', '-address', join(dir, 'no-containerd.sock'), '-socket', path], {
    cwd: dir,
    stdio: 'ignore',
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  for (let i = 0; i < 100; i++) {
    if (
      await stat(path).then(
        (s) => s.isSocket(),
        () => false,
      )
    )
      return { path, child };
    await sleep(20);
  }
  throw new Error('Go shim did not create its socket');
}

const skip = existsSync(SHIM) ? false : `${SHIM} not installed`;

test('our client gets Go ttrpc status codes from containerd-shim-runc-v2', { skip }, async (t) => {
  const { path, child } = await startGoShim(t);
  const c = await TtrpcClient.connect(path);
  t.after(() => c.close());
  const md = { metadata: { 'containerd-namespace': 'berthtest' }, timeoutMs: 5000 };

  // Connect (empty ConnectRequest) answers OK with shim_pid (field 1, varint).
  const res = Buffer.from(await c.call(TASK, 'Connect', new Uint8Array(0), md));
  assert.equal(res[0], 0x08);
  let pid = 0;
  for (let i = 1, shift = 0; i < res.length; i++, shift += 7) {
    pid += (res[i]! & 0x7f) * 2 ** shift;
    if ((res[i]! & 0x80) === 0) break;
  }
  assert.equal(pid, child.pid);

  // State of an unknown task → NotFound; unknown method / service → Unimplemented.
  const stateReq = Uint8Array.from([0x0a, 0x04, ...Buffer.from('nope')]); // StateRequest{id:"nope"}
  await assert.rejects(c.call(TASK, 'State', stateReq, md), (e: unknown) => isBerthError(e, 'NotFound'));
  await assert.rejects(c.call(TASK, 'NoSuchMethod', new Uint8Array(0), md), (e: unknown) => isBerthError(e, 'Unimplemented'));
  await assert.rejects(c.call('containerd.task.v2.Nope', 'X', new Uint8Array(0), md), (e: unknown) => isBerthError(e, 'Unimplemented'));

  // 50 concurrent calls on one connection all get their own answers: Connects (answered with
  // the shim's pid) interleaved with States of unknown tasks (NotFound), so a reply crossed to
  // another stream shows as a Connect that failed or a State that succeeded.
  const kinds = Array.from({ length: 50 }, (_, i) => (i * 7) % 3 === 0);
  const many = await Promise.allSettled(
    kinds.map((isConnect, i) =>
      isConnect
        ? c.call(TASK, 'Connect', new Uint8Array(0), md)
        : c.call(TASK, 'State', Uint8Array.from([0x0a, 6, ...Buffer.from(`nope${String(i).padStart(2, '0')}`)]), md),
    ),
  );
  many.forEach((r, i) => {
    if (kinds[i]) assert.equal(r.status, 'fulfilled', `Connect #${i} got ${r.status === 'rejected' ? String(r.reason) : ''}`);
    else assert.ok(r.status === 'rejected' && isBerthError(r.reason, 'NotFound'), `State #${i} of an unknown task must be NotFound`);
  });
  assert.ok(kinds.filter(Boolean).length > 10 && kinds.filter((k) => !k).length > 10);
});
