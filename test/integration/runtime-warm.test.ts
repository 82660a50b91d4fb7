/**
 * Warm berth shims: the first container of a new pod adopts a pre-spawned shim (no shim boot
 * on the create path), the adopted shim answers on the group's socket name that berth-shim's
 * own `start` computes, and the pool refills behind it.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { RuntimeHarness, readAll } from '../helpers/containerd.js';
import { socketPath } from '../../src/shim/cli.js';
import { alive } from '../helpers/process.js';

const isRoot = process.getuid?.() === 0;

describe('warm berth shims', { skip: !isRoot && 'needs root' }, () => {
  const h = new RuntimeHarness();
  after(() => h.cleanup());

  test('a new pod adopts a warm shim under its group socket; the pool refills; close shuts idle ones down', async () => {
    const tm = h.manager({ warm: { namespaces: [h.ns], size: 1 } });
    await tm.init();
    await tm.warmReady();
    const [warm] = tm.warmShims();
    assert.ok(warm);
    h.shimPids.add(warm.pid);
    const c = h.container('warm-a', ['sh', '-c', 'echo warm-ok'], { 'io.kubernetes.cri.sandbox-id': 'podw' });
    const fifo = h.fifo('warm-a.out');
    const out = readAll(fifo);
    await tm.create({ namespace: h.ns, id: 'warm-a', spec: c.spec, rootfs: c.rootfs, runtime: 'berth', stdout: fifo, stderr: fifo });
    const s = tm.shimOf(h.ns, 'warm-a');
    assert.equal(s?.pid, warm.pid, 'the warm shim hosts the container');
    assert.equal(s?.address, socketPath(tm.shimStateDir, h.ns, 'pod:podw'));
    assert.equal(existsSync(warm.socket), false, 'warm socket renamed away');
    await tm.start(h.ns, 'warm-a');
    assert.equal((await tm.wait(h.ns, 'warm-a')).exitStatus, 0);
    assert.equal(await out, 'warm-ok\n');
    await tm.warmReady();
    const [next] = tm.warmShims();
    assert.ok(next && next.pid !== warm.pid, 'pool refilled with a new shim');
    h.shimPids.add(next.pid);
    await tm.delete(h.ns, 'warm-a');
    await tm.close();
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && (alive(next.pid) || alive(warm.pid))) await new Promise((r) => setTimeout(r, 50));
    assert.equal(alive(warm.pid), false, 'adopted shim exited after its last task');
    assert.equal(alive(next.pid), false, 'idle warm shim shut down on close');
    assert.equal(existsSync(next.socket), false, "idle warm socket removed");
  });

  test('a pod shim whose last task is deleted goes back to the pool and serves the next pod', async () => {
    const tm = h.manager({ warm: { namespaces: [h.ns], size: 2 } });
    await tm.init();
    await tm.warmReady();
    const before = tm.warmShims().map((w) => w.pid).sort();
    for (const pid of before) h.shimPids.add(pid);
    assert.equal(before.length, 2);

    const a = h.container('recycle-a', ['true'], { 'io.kubernetes.cri.sandbox-id': 'pod-ra' });
    await tm.create({ namespace: h.ns, id: 'recycle-a', spec: a.spec, rootfs: a.rootfs, runtime: 'berth' });
    const used = tm.shimOf(h.ns, 'recycle-a')?.pid;
    assert.ok(used && before.includes(used));
    await tm.start(h.ns, 'recycle-a');
    assert.equal((await tm.wait(h.ns, 'recycle-a')).exitStatus, 0);
    await tm.delete(h.ns, 'recycle-a');

    // Back in the pool under a fresh warm name, alive; no new shim was booted.
    const after = tm.warmShims();
    assert.deepEqual(after.map((w) => w.pid).sort(), before);
    assert.ok(alive(used));
    const back = after.find((w) => w.pid === used)!;
    assert.match(back.socket, /\/warm-[0-9a-f]+\.sock$/);
    assert.ok(existsSync(back.socket));

    // Both pooled shims serve new pods (the recycled one included).
    for (const id of ['recycle-b', 'recycle-c']) {
      const c = h.container(id, ['sh', '-c', `echo ${id}`], { 'io.kubernetes.cri.sandbox-id': `pod-${id}` });
      const fifo = h.fifo(`${id}.out`);
      const out = readAll(fifo);
      await tm.create({ namespace: h.ns, id, spec: c.spec, rootfs: c.rootfs, runtime: 'berth', stdout: fifo, stderr: fifo });
      await tm.start(h.ns, id);
      assert.equal((await tm.wait(h.ns, id)).exitStatus, 0);
      assert.equal(await out, `${id}\n`);
    }
    const hosts = ['recycle-b', 'recycle-c'].map((id) => tm.shimOf(h.ns, id)?.pid);
    assert.ok(hosts.includes(used), 'the recycled shim hosted one of them');
    for (const id of ['recycle-b', 'recycle-c']) await tm.delete(h.ns, id);

    // Many pods through the same recycled shims: no listener piles up on their connections.
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(w.name);
    process.on('warning', onWarning);
    try {
      for (let i = 0; i < 12; i++) {
        const id = `recycle-loop-${i}`;
        const c = h.container(id, ['true'], { 'io.kubernetes.cri.sandbox-id': `pod-${id}` });
        await tm.create({ namespace: h.ns, id, spec: c.spec, rootfs: c.rootfs, runtime: 'berth' });
        await tm.start(h.ns, id);
        await tm.wait(h.ns, id);
        await tm.delete(h.ns, id);
      }
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('warning', onWarning);
    }
    assert.deepEqual(warnings.filter((w) => w === 'MaxListenersExceededWarning'), []);

    // A shim in which a create failed is not trusted back into the pool: it is shut down.
    const bad = h.container('recycle-bad', ['/no/such/binary'], { 'io.kubernetes.cri.sandbox-id': 'pod-recycle-bad' });
    const pool = tm.warmShims().map((w) => w.pid);
    await assert.rejects(tm.create({ namespace: h.ns, id: 'recycle-bad', spec: bad.spec, rootfs: bad.rootfs, runtime: 'berth' }));
    const taken = pool.filter((pid) => !tm.warmShims().some((w) => w.pid === pid));
    assert.equal(taken.length, 1, 'the failed create had adopted one pooled shim');
    const end = Date.now() + 5000;
    while (Date.now() < end && alive(taken[0]!)) await new Promise((r) => setTimeout(r, 50));
    assert.equal(alive(taken[0]!), false, 'that shim was shut down, not recycled');
    await tm.close();
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && before.some(alive)) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(before.filter(alive), [], 'pooled shims shut down on close');
  });
});

