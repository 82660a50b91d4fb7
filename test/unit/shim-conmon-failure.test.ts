/**
 * What CreateContainer says when the runtime below conmon dies without a word (issue 12): a
 * kill -9 of `runc create` leaves conmon nothing to forward (it sends runc's stderr only when
 * there is some, and reports the rest to syslog), so the shim's error must name runc and what
 * it knows, not blame conmon. A real conmon runs a "runtime" script that SIGKILLs itself.
 */
import { Reaper } from '../../src/shim/reaper.js';
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { conmonCreate } from '../../src/shim/conmon.js';
import { Runc } from '../../src/shim/runc.js';

const reaper = new Reaper();
reaper.start(50);
// The reaper's timer does not hold the event loop; this does while the tests run.
const keepAlive = setInterval(() => undefined, 1000);
after(() => {
  clearInterval(keepAlive);
  reaper.stop();
});

const skip = spawnSync('conmon', ['--version']).status === 0 ? false : 'conmon not installed';

function setup(t: { after: (fn: () => void) => void }, script: string): { dir: string; runc: Runc } {
  const dir = mkdtempSync(join(tmpdir(), 'berth-conmon-fail-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const d of ['bundle', 'proc', 'sock', 'exit', 'root']) mkdirSync(join(dir, d));
  writeFileSync(join(dir, 'bundle', 'config.json'), '{}');
  writeFileSync(join(dir, 'rt'), `#!/bin/sh\n${script}\n`);
  chmodSync(join(dir, 'rt'), 0o755);
  return { dir, runc: new Runc({ binary: join(dir, 'rt'), root: join(dir, 'root'), logFile: join(dir, 'log.json') }) };
}

function create(dir: string, runc: Runc) {
  return conmonCreate(
    {
      conmon: 'conmon',
      runc,
      containerId: 'c1',
      cuuid: 'c1',
      procDir: join(dir, 'proc'),
      socketDir: join(dir, 'sock'),
      terminal: false,
      stdin: false,
      stdinOnce: false,
      pidFile: join(dir, 'pid'),
      conmonPidFile: join(dir, 'conmon.pid'),
      bundle: join(dir, 'bundle'),
      exitDir: join(dir, 'exit'),
      reaper,
    },
    20_000,
  );
}

test('a runc create killed by a signal: the error names runc and says conmon outlived it, not "conmon exited"', { skip }, async (t) => {
  const { dir, runc } = setup(t, 'kill -9 $$');
  await assert.rejects(create(dir, runc), (err: Error) => {
    assert.match(
      err.message,
      /^runc create: .*\/rt create ended without a result: runc logged no error and conmon \(pid \d+\) exited with status \d+ without a pid \(runc was killed or crashed\)$/,
    );
    assert.doesNotMatch(err.message, /conmon exited|signal/);
    return true;
  });
});

test('conmon itself killed by a signal while runc create runs: the error says the monitor was killed, naming the signal', { skip }, async (t) => {
  // The runtime kills its parent (conmon, which forked it) and then waits to be cleaned up.
  const { dir, runc } = setup(t, 'kill -9 $PPID; sleep 5');
  await assert.rejects(create(dir, runc), (err: Error) => {
    assert.match(
      err.message,
      /^runc create: .*\/rt create ended without a result: its monitor conmon \(pid \d+\) was killed by signal 9 \(SIGKILL\) before it reported a pid$/,
    );
    return true;
  });
});

test("a runc create that fails with an error: conmon forwards it and the error quotes runc's own words", { skip }, async (t) => {
  const { dir, runc } = setup(t, 'echo "container_linux.go: something broke" >&2; exit 1');
  await assert.rejects(create(dir, runc), /runc create: container_linux\.go: something broke/);
});
