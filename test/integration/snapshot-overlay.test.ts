import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createSnapshotter, chainIDs, mountAll, unmount } from '../../src/core/snapshots/index.js';
import type { Snapshotter } from '../../src/core/snapshots/types.js';
import { unpackLayer } from '../../src/core/unpack/unpack-layer.js';
import { buildTar, sha256 } from '../helpers/tar.js';

const isRoot = process.getuid?.() === 0;

async function mounted(file: string): Promise<boolean> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info.split('\n').some((l) => l.split(' ')[4] === file);
}

test('three overlay layers stack into the expected merged view', { skip: !isRoot && 'needs root' }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'berth-overlay-'));
  const targets: string[] = [];
  let sn: Snapshotter | undefined;
  t.after(async () => {
    // Unmount first, then remove: never rm -rf through a live mount.
    for (const m of targets.reverse()) unmount(m, { detach: true, all: true });
    sn?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const created = await createSnapshotter({ root: join(dir, 'snapshots'), driver: 'overlayfs' });
  sn = created.snapshotter;
  assert.equal(sn.driver, 'overlayfs');

  const layers = [
    await buildTar([
      { name: 'etc/', type: 'directory' },
      { name: 'etc/hostname', content: 'base' },
      { name: 'etc/remove-me', content: 'x' },
      { name: 'var/', type: 'directory' },
      { name: 'var/cache/', type: 'directory' },
      { name: 'var/cache/old1', content: 'o1' },
      { name: 'var/cache/old2', content: 'o2' },
      { name: 'bin/', type: 'directory' },
      { name: 'bin/tool', content: '#!/bin/sh\n', mode: 0o755 },
    ]),
    await buildTar([
      { name: 'etc/.wh.remove-me' },
      { name: 'etc/hostname', content: 'middle' },
      { name: 'var/cache/.wh..wh..opq' },
      { name: 'var/cache/fresh', content: 'f' },
    ]),
    await buildTar([
      { name: 'etc/added', content: 'top' },
      { name: 'usr/lib/', type: 'directory' },
    ]),
  ];
  const diffIDs = layers.map((l) => sha256(l));
  const chain = chainIDs(diffIDs);
  let parent: string | undefined;
  for (let i = 0; i < layers.length; i++) {
    const r = await unpackLayer(sn, { chainID: chain[i]!, parentChainID: parent, tarStream: Readable.from([layers[i]!]), expectedDiffID: diffIDs[i] });
    assert.equal(r.existed, false);
    parent = chain[i];
  }

  // An active container rootfs on top of the 3-layer chain.
  const rootfs = join(dir, 'rootfs');
  await mkdir(rootfs);
  const mounts = await sn.prepare('container-1', chain[2]);
  assert.equal(mounts[0]!.type, 'overlay');
  mountAll(mounts, rootfs);
  targets.push(rootfs);
  assert.ok(await mounted(rootfs));

  assert.equal(await readFile(join(rootfs, 'etc/hostname'), 'utf8'), 'middle');
  assert.equal(await readFile(join(rootfs, 'etc/added'), 'utf8'), 'top');
  await assert.rejects(lstat(join(rootfs, 'etc/remove-me')), { code: 'ENOENT' }, 'whiteout hides the lower file');
  assert.deepEqual(await readdir(join(rootfs, 'var/cache')), ['fresh'], 'opaque dir hides lower content');
  assert.equal((await lstat(join(rootfs, 'bin/tool'))).mode & 0o777, 0o755);

  // Writes land in the container's upper dir, not in the image layers.
  await writeFile(join(rootfs, 'etc/hostname'), 'container');
  const upper = (await sn.applyTarget('container-1')).dir;
  assert.equal(await readFile(join(upper, 'etc/hostname'), 'utf8'), 'container');

  // A read-only view of the same chain.
  const view = join(dir, 'view');
  await mkdir(view);
  mountAll(await sn.view('view-1', chain[2]), view);
  targets.push(view);
  assert.equal(await readFile(join(view, 'etc/hostname'), 'utf8'), 'middle');
  await assert.rejects(writeFile(join(view, 'x'), 'y'), { code: 'EROFS' });

  unmount(rootfs);
  unmount(view);
  assert.equal(await mounted(rootfs), false);
  assert.equal(await mounted(view), false);
  unmount(rootfs); // idempotent
  await sn.remove('container-1');
  await sn.remove('view-1');
  assert.ok((await sn.totalUsage()).inodes > 10);
});

test('bind mounts from a base snapshot honour ro', { skip: !isRoot && 'needs root' }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'berth-bind-'));
  const target = join(dir, 'mnt');
  const { snapshotter: sn } = await createSnapshotter({ root: join(dir, 'snapshots'), driver: 'native' });
  t.after(async () => {
    unmount(target, { detach: true, all: true });
    sn.close();
    await rm(dir, { recursive: true, force: true });
  });
  await sn.prepare('a');
  await writeFile(join((await sn.applyTarget('a')).dir, 'f'), 'data');
  await sn.commit('A', 'a');
  await mkdir(target);
  mountAll(await sn.view('v', 'A'), target);
  assert.equal(await readFile(join(target, 'f'), 'utf8'), 'data');
  await assert.rejects(writeFile(join(target, 'f'), 'x'), { code: 'EROFS' });
  unmount(target);
  assert.equal(await mounted(target), false);
});
