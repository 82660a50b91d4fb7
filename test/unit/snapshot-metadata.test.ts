import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { NativeSnapshotter } from '../../src/core/snapshots/native.js';
import { OverlaySnapshotter } from '../../src/core/snapshots/overlay.js';
import type { Snapshotter } from '../../src/core/snapshots/types.js';
import { chainIDs } from '../../src/core/snapshots/chainid.js';
import { parseMountOptions } from '../../src/mount.js';
import { sha256, tempDir } from '../helpers/tar.js';

async function open(t: import('node:test').TestContext, Kind: typeof OverlaySnapshotter | typeof NativeSnapshotter) {
  const root = await tempDir(t);
  const sn = new Kind(root);
  await sn.init();
  t.after(() => sn.close());
  return { sn, root };
}

async function writeInto(sn: Snapshotter, key: string, name: string, content: string) {
  const { dir } = await sn.applyTarget(key);
  await writeFile(join(dir, name), content);
}

for (const Kind of [OverlaySnapshotter, NativeSnapshotter]) {
  const d = Kind.name;

  test(`${d}: prepare, commit, view, stat, list and remove follow the snapshot lifecycle`, async (t) => {
    const { sn } = await open(t, Kind);
    await sn.prepare('tmp1', undefined, { a: '1' });
    await writeInto(sn, 'tmp1', 'f1', 'one');
    await sn.commit('L1', 'tmp1', { b: '2' });
    const l1 = await sn.stat('L1');
    assert.equal(l1.kind, 'committed');
    assert.deepEqual(l1.labels, { a: '1', b: '2' });
    await assert.rejects(sn.stat('tmp1'), { kind: 'NotFound' });

    await sn.prepare('tmp2', 'L1');
    await writeInto(sn, 'tmp2', 'f2', 'two');
    await sn.commit('L2', 'tmp2');
    assert.equal((await sn.stat('L2')).parent, 'L1');

    const mounts = await sn.view('v', 'L2');
    assert.equal(mounts.length, 1);
    assert.ok(mounts[0]!.options.includes('ro') || mounts[0]!.type === 'overlay');
    assert.deepEqual(await sn.mounts('v'), mounts);
    assert.equal((await sn.stat('v')).kind, 'view');
    assert.deepEqual((await sn.list()).map((i) => i.key).sort(), ['L1', 'L2', 'v']);

    assert.ok((await sn.usage('L1')).inodes >= 2);
    const total = await sn.totalUsage();
    assert.ok(total.size > 0 && total.inodes > 3);
    // The total is the committed layers' recorded usage plus a walk of the others.
    const parts = await Promise.all(['L1', 'L2', 'v'].map((k) => sn.usage(k)));
    assert.deepEqual(total, { size: parts.reduce((n, u) => n + u.size, 0), inodes: parts.reduce((n, u) => n + u.inodes, 0) });

    await assert.rejects(sn.remove('L1'), { code: 'snapshot.has_children' });
    await assert.rejects(sn.prepare('v', 'L1'), { code: 'snapshot.exists' });
    await assert.rejects(sn.prepare('x', 'nope'), { code: 'snapshot.parent_not_found' });
    await assert.rejects(sn.prepare('x', 'v'), { code: 'snapshot.parent_not_committed' });
    await assert.rejects(sn.commit('L3', 'v'), { code: 'snapshot.not_active' });
    await assert.rejects(sn.mounts('L1'), { code: 'snapshot.committed' });
    await sn.remove('v');
    await sn.remove('L2');
    await sn.remove('L1');
    assert.deepEqual(await sn.list(), []);
    assert.deepEqual(await readdir(join(sn.root, 'snapshots')), []);
    await assert.rejects(sn.remove('L1'), { kind: 'NotFound' });
  });

  test(`${d}: totalUsage keeps container walks for usageMaxAgeMs, walks stale ones again, drops removed ones`, async (t) => {
    const { sn } = await open(t, Kind);
    await sn.prepare('tmp1');
    await writeInto(sn, 'tmp1', 'f1', 'one');
    await sn.commit('L1', 'tmp1');
    await sn.prepare('ctr', 'L1');
    const first = await sn.totalUsage();
    const both = async () => ({
      size: (await sn.usage('L1')).size + (await sn.usage('ctr')).size,
      inodes: (await sn.usage('L1')).inodes + (await sn.usage('ctr')).inodes,
    });
    assert.deepEqual(first, await both(), 'a snapshot never walked is walked for the reply');
    // The container writes 64 KiB: a fresh walk is kept, so the answer stays the cached one.
    await writeInto(sn, 'ctr', 'big', 'x'.repeat(64 * 1024));
    assert.deepEqual(await sn.totalUsage(), first);
    // Once the walk is older than the bound, the reply still uses it and a background pass re-walks.
    sn.usageMaxAgeMs = -1;
    assert.deepEqual(await sn.totalUsage(), first);
    await sn.usageSettled();
    sn.usageMaxAgeMs = 60_000;
    const after = await sn.totalUsage();
    assert.deepEqual(after, await both());
    assert.ok(after.size >= first.size + 64 * 1024, `the re-walk sees the new file (${first.size} → ${after.size})`);
    // A removed snapshot leaves the total at once.
    await sn.remove('ctr');
    assert.deepEqual(await sn.totalUsage(), await sn.usage('L1'));
  });

  test(`${d}: usage answers a stale walk at once and the background pass renews it`, async (t) => {
    const { sn } = await open(t, Kind);
    await sn.prepare('ctr');
    const first = await sn.usage('ctr');
    await writeInto(sn, 'ctr', 'big', 'x'.repeat(64 * 1024));
    // Fresh: the kept walk answers.
    assert.deepEqual(await sn.usage('ctr'), first);
    // Stale: still the kept walk (no inline walk of the tree), and a background pass starts.
    sn.usageMaxAgeMs = -1;
    assert.deepEqual(await sn.usage('ctr'), first);
    await sn.usageSettled();
    sn.usageMaxAgeMs = 60_000;
    const after = await sn.usage('ctr');
    assert.ok(after.size >= first.size + 64 * 1024, `the background re-walk sees the new file (${first.size} → ${after.size})`);
    assert.deepEqual(after, await sn.totalUsage(), 'usage and totalUsage share the walks');
  });

  test(`${d}: init removes snapshot dirs that have no record`, async (t) => {
    const { sn, root } = await open(t, Kind);
    await mkdir(join(root, 'snapshots', '999', 'fs'), { recursive: true });
    await sn.prepare('keep');
    sn.close();
    await sn.init();
    const dirs = await readdir(join(root, 'snapshots'));
    assert.equal(dirs.length, 1);
    assert.notEqual(dirs[0], '999');
    assert.equal((await sn.stat('keep')).kind, 'active');
  });
}

test('overlayfs mounts: bind for a base, overlay with lowers newest first for a chain', async (t) => {
  const { sn, root } = await open(t, OverlaySnapshotter);
  const m0 = await sn.prepare('a');
  assert.equal(m0[0]!.type, 'bind');
  assert.deepEqual(m0[0]!.options, ['rw', 'rbind']);
  await sn.commit('A', 'a');
  await sn.prepare('b', 'A');
  await sn.commit('B', 'b');
  const [m] = await sn.prepare('c', 'B');
  assert.equal(m!.type, 'overlay');
  const lower = m!.options.find((o) => o.startsWith('lowerdir='))!;
  const idA = (await readdir(join(root, 'snapshots'))).sort()[0];
  assert.match(lower, new RegExp(`/snapshots/\\d+/fs:${root}/snapshots/${idA}/fs$`));
  assert.ok(m!.options.some((o) => o.startsWith('upperdir=')));
  const [v1] = await sn.view('v1', 'A');
  assert.equal(v1!.type, 'bind');
  assert.deepEqual(v1!.options, ['ro', 'rbind']);
  const target = await sn.applyTarget('c');
  assert.equal(target.mode, 'overlay');
  assert.equal(target.lowers.length, 2);
});

test('native snapshots are independent full copies preserving metadata', async (t) => {
  const { sn } = await open(t, NativeSnapshotter);
  await sn.prepare('a');
  const { dir } = await sn.applyTarget('a');
  await writeFile(join(dir, 'f'), 'base');
  await mkdir(join(dir, 'sub'), { mode: 0o1777 });
  const { chmod, chown, symlink, link, utimes } = await import('node:fs/promises');
  await chmod(join(dir, 'sub'), 0o1777);
  await chown(join(dir, 'f'), 1234, 5678);
  await chmod(join(dir, 'f'), 0o4750);
  await utimes(join(dir, 'f'), 1000, 1000);
  await symlink('f', join(dir, 'ln'));
  await link(join(dir, 'f'), join(dir, 'hard'));
  await sn.commit('A', 'a');
  await sn.prepare('b', 'A');
  const b = (await sn.applyTarget('b')).dir;
  const st = await lstat(join(b, 'f'));
  assert.equal(st.uid, 1234);
  assert.equal(st.gid, 5678);
  assert.equal(st.mode & 0o7777, 0o4750);
  assert.equal(st.mtimeMs, 1_000_000);
  assert.equal((await lstat(join(b, 'sub'))).mode & 0o7777, 0o1777);
  assert.ok((await lstat(join(b, 'ln'))).isSymbolicLink());
  assert.equal((await lstat(join(b, 'hard'))).ino, st.ino, 'hard links inside the tree are kept');
  assert.notEqual(st.ino, (await lstat(join(dir, 'f'))).ino, 'the copy shares no inode with its parent');
  await writeFile(join(b, 'f'), 'changed');
  assert.equal(await readFile(join(dir, 'f'), 'utf8'), 'base');
  const [m] = await sn.mounts('b');
  assert.deepEqual(m, { type: 'bind', source: b, options: ['rw', 'rbind'] });
});

test('chainIDs follow the OCI image spec', () => {
  const d = [sha256('a'), sha256('b'), sha256('c')];
  const c = chainIDs(d);
  assert.equal(c[0], d[0]);
  assert.equal(c[1], sha256(`${d[0]} ${d[1]}`));
  assert.equal(c[2], sha256(`${c[1]} ${d[2]}`));
  assert.deepEqual(chainIDs([]), []);
});

test('mount options split into flags and data; oversized data is refused', () => {
  const o = parseMountOptions(['ro', 'nosuid', 'rbind', 'rprivate', 'lowerdir=/a:/b', 'index=off']);
  assert.equal(o.flags, 0x1 | 0x2 | 0x1000 | 0x4000);
  assert.equal(o.propagation, 0x40000 | 0x4000);
  assert.equal(o.data, 'lowerdir=/a:/b,index=off');
  assert.throws(() => parseMountOptions(['lowerdir=' + '/x'.repeat(3000)]), { code: 'mount.options_too_long' });
});
