/**
 * Trees a container can write into its writable layer (vulnerability 1 and 7 of issue 12):
 * deeper than PATH_MAX, or with a directory swapped for a symlink to the host, they must not
 * make RemoveContainer lie, berthd refuse to start, or ImageFsInfo fail or walk the host.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NativeSnapshotter } from '../../src/core/snapshots/native.js';
import { OverlaySnapshotter } from '../../src/core/snapshots/overlay.js';
import { tempDir } from '../helpers/tar.js';

/** mkdir d; cd d; … `depth` times (chdir keeps every call short of PATH_MAX). */
function deepTree(dir: string, depth: number): void {
  const cwd = process.cwd();
  process.chdir(dir);
  try {
    for (let i = 0; i < depth; i++) {
      mkdirSync('d');
      process.chdir('d');
    }
    writeFileSync('bottom', 'x'.repeat(5000));
  } finally {
    process.chdir(cwd);
  }
}

for (const Kind of [OverlaySnapshotter, NativeSnapshotter]) {
  const d = Kind.name;

  test(`${d}: a writable layer 2100 levels deep is measured and removed, record last`, async (t) => {
    const root = await tempDir(t);
    const sn = new Kind(root);
    await sn.init();
    t.after(() => sn.close());
    await sn.prepare('ctr');
    const { dir } = await sn.applyTarget('ctr');
    deepTree(dir, 2100);

    const u = await sn.usage('ctr');
    assert.ok(u.inodes >= 2102, `usage counts every level (got ${u.inodes} inodes)`);
    const total = await sn.totalUsage();
    assert.ok(total.inodes >= u.inodes);

    await sn.remove('ctr');
    await assert.rejects(sn.stat('ctr'), { kind: 'NotFound' });
    assert.deepEqual(await readdir(join(root, 'snapshots')), [], 'nothing is left of the tree');
  });

  test(`${d}: a removal that fails keeps the record, and a retry finishes it`, async (t) => {
    const root = await tempDir(t);
    const sn = new Kind(root);
    await sn.init();
    t.after(() => sn.close());
    await sn.prepare('ctr');
    const { dir } = await sn.applyTarget('ctr');
    await mkdir(join(dir, 'mnt'));
    await writeFile(join(dir, 'file'), 'x');
    // A mount point inside the tree: removal must fail (and not empty the mounted filesystem).
    execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', join(dir, 'mnt')]);
    let mnt = join(dir, 'mnt');
    try {
      await assert.rejects(sn.remove('ctr'), { code: 'EBUSY' });
      assert.equal((await sn.stat('ctr')).kind, 'active', 'the record stays while its directory exists');
      // The half-removed tree no longer sits at the snapshot's own path.
      assert.equal(existsSync(dir), false);
      const doomed = (await readdir(join(root, 'snapshots'))).filter((n) => n.startsWith('rm-'));
      assert.equal(doomed.length, 1);
      mnt = join(root, 'snapshots', doomed[0]!, 'fs', 'mnt');
    } finally {
      // Here, not in an after-hook: tempDir's cleanup would run first.
      execFileSync('umount', ['-l', mnt]);
    }
    await sn.remove('ctr');
    await assert.rejects(sn.stat('ctr'), { kind: 'NotFound' });
    assert.deepEqual(await readdir(join(root, 'snapshots')), []);
  });

  test(`${d}: init removes deep leftovers and goes on past one it cannot remove`, async (t) => {
    const root = await tempDir(t);
    const first = new Kind(root);
    await first.init();
    await first.prepare('keep');
    first.close();
    const snaps = join(root, 'snapshots');
    await mkdir(join(snaps, '999'));
    deepTree(join(snaps, '999'), 2100);
    await mkdir(join(snaps, 'staging-busy', 'mnt'), { recursive: true });
    execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', join(snaps, 'staging-busy', 'mnt')]);
    const sn = new Kind(root);
    try {
      await sn.init();
    } finally {
      // Before tempDir's own cleanup (after-hooks run in order).
      execFileSync('umount', ['-l', join(snaps, 'staging-busy', 'mnt')]);
    }
    t.after(() => sn.close());
    const left = (await readdir(snaps)).sort();
    assert.ok(!left.includes('999'), 'the deep orphan is removed');
    assert.ok(left.includes('staging-busy'), 'the busy one is left, logged');
    assert.equal((await sn.stat('keep')).kind, 'active');
  });

  test(`${d}: usage does not follow a directory swapped for a symlink to the host`, async (t) => {
    const root = await tempDir(t);
    const outside = await tempDir(t);
    for (let i = 0; i < 50; i++) await writeFile(join(outside, `f${i}`), 'y'.repeat(8192));
    const sn = new Kind(root);
    await sn.init();
    t.after(() => sn.close());
    await sn.prepare('ctr');
    const { dir } = await sn.applyTarget('ctr');
    symlinkSync(outside, join(dir, 'host'));
    const u = await sn.usage('ctr');
    assert.ok(u.inodes < 10, `the host directory is not walked (counted ${u.inodes} inodes)`);
    await sn.remove('ctr');
    assert.equal((await readdir(outside)).length, 50, 'removal did not follow the symlink');
    assert.ok((await stat(outside)).isDirectory());
  });
}

test('usage never walks the host while a container swaps directories for symlinks to it', async (t) => {
  const { Worker } = await import('node:worker_threads');
  const { diskUsage } = await import('../../src/core/snapshots/usage.js');
  const dir = await tempDir(t);
  const host = await tempDir(t);
  for (let i = 0; i < 2000; i++) writeFileSync(join(host, `f${i}`), '');
  const n = 20;
  for (let i = 0; i < n; i++) {
    mkdirSync(join(dir, `d${i}`));
    writeFileSync(join(dir, `d${i}`, 'f'), '');
  }
  // The "container": swaps each d<i> for a symlink to the host dir and back, until told to stop.
  const swapper = new Worker(
    `const { workerData, parentPort } = require('node:worker_threads');
     const fs = require('node:fs');
     let stop = false;
     parentPort.on('message', () => { stop = true; });
     const loop = () => {
       for (let k = 0; k < 200 && !stop; k++) {
         for (let i = 0; i < ${n}; i++) {
           const d = workerData.dir + '/d' + i;
           try { fs.renameSync(d, d + '.real'); fs.symlinkSync(workerData.host, d); } catch {}
           try { fs.unlinkSync(d); fs.renameSync(d + '.real', d); } catch {}
         }
       }
       if (stop) { parentPort.close(); return; }
       setImmediate(loop);
     };
     loop();`,
    { eval: true, workerData: { dir, host } },
  );
  let most = 0;
  try {
    for (let i = 0; i < 300; i++) most = Math.max(most, (await diskUsage(dir)).inodes);
  } finally {
    swapper.postMessage('stop');
    await new Promise((r) => swapper.once('exit', r));
  }
  assert.ok(most < 100, `the walk stayed in the tree (at most ${most} inodes counted; the host dir has 2000)`);
});

test('pruning unused layers logs and keeps one it cannot remove, removes the rest, and ends', async (t) => {
  const { SnapshotLayerStore } = await import('../../src/core/images/layer-store.js');
  const { UnpackPool } = await import('../../src/core/unpack/pool.js');
  const { logger } = await import('../../src/log.js');
  const root = await tempDir(t);
  const sn = new OverlaySnapshotter(root);
  await sn.init();
  const pool = new UnpackPool({ size: 0 });
  t.after(async () => {
    await pool.close();
    sn.close();
  });
  const chain = (c: string) => `sha256:${c.repeat(64)}`;
  await sn.prepare('a');
  const busyDir = join((await sn.applyTarget('a')).dir, 'mnt');
  await mkdir(busyDir);
  await sn.commit(chain('a'), 'a');
  await sn.prepare('b');
  await sn.commit(chain('b'), 'b');
  const store = new SnapshotLayerStore(sn, logger(), { pool });
  execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', busyDir]);
  let removed: string[];
  try {
    removed = await store.prune(new Set());
    assert.equal((await sn.stat(chain('a'))).kind, 'committed', 'the busy layer is kept');
  } finally {
    execFileSync('umount', [
      '-l',
      join(
        root,
        'snapshots',
        (await readdir(join(root, 'snapshots'))).find((n) => n.startsWith('rm-'))!,
        'fs',
        'mnt',
      ),
    ]);
  }
  assert.deepEqual(removed, [chain('b')]);
  assert.deepEqual(await store.prune(new Set()), [chain('a')], 'the next collection removes it');
});
