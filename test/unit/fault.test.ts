/**
 * BERTH_FAULT parsing (src/fault.ts): steps with actions, several at once, malformed entries
 * refused with a message naming the entry; unset, the hooks are absent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { faultable, faultPoint, parseFaults } from '../../src/fault.js';

test('BERTH_FAULT lists steps with pause, kill or fail', () => {
  const p = parseFaults('RunPodSandbox.cni-add:kill, CreateContainer.snapshot.done:pause,StopPodSandbox.network:fail');
  assert.deepEqual(
    [...p],
    [
      ['RunPodSandbox.cni-add', 'kill'],
      ['CreateContainer.snapshot.done', 'pause'],
      ['StopPodSandbox.network', 'fail'],
    ],
  );
  assert.equal(parseFaults(undefined).size, 0);
  assert.equal(parseFaults('').size, 0);
});

test('a malformed BERTH_FAULT entry is refused naming it', () => {
  for (const bad of ['RunPodSandbox.pin', 'RunPodSandbox.pin:explode', 'pin:kill', ':kill', 'RunPodSandbox.:fail']) {
    assert.throws(
      () => parseFaults(bad),
      (e: Error) => e.message.includes(JSON.stringify(bad)),
      bad,
    );
  }
});

test('unset, there are no hooks: faultable returns the function itself', () => {
  assert.equal(process.env['BERTH_FAULT'], undefined);
  assert.equal(faultPoint, undefined);
  const fn = () => 1;
  assert.equal(faultable('RunPodSandbox.pin', fn), fn);
});

test('set, a fail step throws Unavailable fault.injected and a kill step SIGKILLs the process', () => {
  const script = `
    const { faultable, faultPoint } = await import(${JSON.stringify(new URL('../../src/fault.js', import.meta.url).href)});
    let ran = 0;
    await faultable('CreateContainer.spec', () => { ran++; })();
    try { await faultable('CreateContainer.stdio', () => { ran++; })(); } catch (e) { console.log(e.kind, e.code, ran); }
    await faultPoint('StopPodSandbox.network');
    console.log('not reached');`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, BERTH_FAULT: 'CreateContainer.stdio:fail,StopPodSandbox.network:kill' },
    encoding: 'utf8',
  });
  assert.equal(r.stdout.trim(), 'Unavailable fault.injected 1');
  assert.equal(r.signal, 'SIGKILL');
  assert.match(r.stderr, /berth fault: kill at StopPodSandbox.network/);
});

test('a pause step writes its marker with the pid and goes on once the marker is removed', async () => {
  const { spawn } = await import('node:child_process');
  const { mkdtempSync, existsSync, readFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { until } = await import('../helpers/process.js');
  const dir = mkdtempSync(join(tmpdir(), 'berth-fault-unit-'));
  const script = `
    const { faultable } = await import(${JSON.stringify(new URL('../../src/fault.js', import.meta.url).href)});
    console.log('result', await faultable('PullImage.config', () => 42)());`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, BERTH_FAULT: 'PullImage.config.done:pause', BERTH_FAULT_DIR: dir },
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', r));
  const marker = join(dir, 'PullImage.config.done');
  await until(() => existsSync(marker), 'the pause marker');
  assert.equal(readFileSync(marker, 'utf8').trim(), String(child.pid));
  assert.equal(out, '', 'paused: the step has not returned');
  rmSync(marker);
  assert.equal(await exited, 0);
  assert.equal(out.trim(), 'result 42');
  rmSync(dir, { recursive: true, force: true });
});
