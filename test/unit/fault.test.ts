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
  assert.deepEqual([...p], [
    ['RunPodSandbox.cni-add', 'kill'],
    ['CreateContainer.snapshot.done', 'pause'],
    ['StopPodSandbox.network', 'fail'],
  ]);
  assert.equal(parseFaults(undefined).size, 0);
  assert.equal(parseFaults('').size, 0);
});

test('a malformed BERTH_FAULT entry is refused naming it', () => {
  for (const bad of ['RunPodSandbox.pin', 'RunPodSandbox.pin:explode', 'pin:kill', ':kill', 'RunPodSandbox.:fail']) {
    assert.throws(() => parseFaults(bad), (e: Error) => e.message.includes(JSON.stringify(bad)), bad);
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
