/**
 * The shim's own `runc start` (runc.ts readExecFifo): it reads runc init's byte from the exec
 * fifo and removes the fifo, and it never waits forever on an init that died before opening
 * its end. Plain FIFOs stand in for runc's (mkfifo; a child process plays runc init).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { readExecFifo } from '../../src/shim/runc.js';

function fifoDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'berth-execfifo-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const fifo = join(dir, 'exec.fifo');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0, 'mkfifo');
  return fifo;
}

test('the byte init writes starts the container and the fifo is removed, as runc start does', async (t) => {
  const fifo = fifoDir(t);
  // Like runc init: open the fifo for writing (waits for the reader), write "0", then go on.
  const init = spawn('sh', ['-c', `printf 0 > ${fifo}; sleep 30`], { stdio: 'ignore' });
  t.after(() => init.kill('SIGKILL'));
  assert.equal(await readExecFifo(fifo, init.pid!), true);
  assert.equal(existsSync(fifo), false, 'fifo removed: runc now reports the container running');
});

test('an init that dies before opening its end does not leave the start waiting', async (t) => {
  const fifo = fifoDir(t);
  const init = spawn('sleep', ['30'], { stdio: 'ignore' });
  const started = readExecFifo(fifo, init.pid!);
  init.kill('SIGKILL');
  await new Promise((r) => init.once('exit', r));
  assert.equal(await started, false, 'no byte read: not started');
  assert.equal(existsSync(fifo), true, 'fifo left for runc to judge');
});

test('an init that closes its end without writing is not started', async (t) => {
  const fifo = fifoDir(t);
  const init = spawn('sh', ['-c', `: > ${fifo}; sleep 30`], { stdio: 'ignore' });
  t.after(() => init.kill('SIGKILL'));
  assert.equal(await readExecFifo(fifo, init.pid!), false);
});
