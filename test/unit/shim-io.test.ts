import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessIO } from '../../src/shim/io.js';

test('drain waits for the outputs only: an open stdin FIFO does not hold an exit back', { timeout: 20_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-shim-io-'));
  try {
    const stdin = join(dir, 'in');
    const stdout = join(dir, 'out');
    execFileSync('mkfifo', [stdin, stdout]);
    const io = await ProcessIO.open({ stdin, stdout, stderr: '', terminal: false }, { cri: false, containerId: 'c', namespace: 'ns' });
    try {
      // No process got the child side: closing it is what the exit of the process does.
      io.closeChildSide();
      // Far longer than the test's timeout: only EOF on the outputs can end this in time.
      assert.equal(await io.drain(600_000), true);
    } finally {
      await io.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
