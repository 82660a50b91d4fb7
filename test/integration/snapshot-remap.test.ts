import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, chown, link, lstat, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSnapshotter, mountAll, Remapper, remapName, shiftTree, unmount, type IdMappings } from '../../src/core/snapshots/index.js';
import { lgetxattr, lsetxattr } from '../../src/core/unpack/sys.js';
import type { Snapshotter } from '../../src/core/snapshots/types.js';
import { isBerthError } from '../../src/errors.js';

const isRoot = process.getuid?.() === 0;
const PLAN: IdMappings = {
  uidMappings: [{ containerID: 0, hostID: 200000, size: 65536 }],
  gidMappings: [{ containerID: 0, hostID: 300000, size: 65536 }],
};
const CHAIN = `sha256:${'ab'.repeat(32)}`;

/** An overlay snapshotter with one committed "image" layer holding a small tree. */
async function setup(t: { after(fn: () => Promise<void>): void }, extra?: (fs: string) => Promise<void>) {
  const dir = await mkdtemp(join(tmpdir(), 'berth-remap-'));
  const mounts: string[] = [];
  let sn: Snapshotter | undefined;
  t.after(async () => {
    for (const m of mounts.reverse()) unmount(m, { detach: true, all: true });
    sn?.close();
    await rm(dir, { recursive: true, force: true });
  });
  sn = (await createSnapshotter({ root: join(dir, 'snapshots'), driver: 'overlayfs' })).snapshotter;
  await sn.prepare('extract', undefined);
  const fs = (await sn.applyTarget('extract')).dir;
  await mkdir(join(fs, 'etc'));
  await writeFile(join(fs, 'etc', 'passwd'), 'root:x:0:0::/root:/bin/sh\n');
  await mkdir(join(fs, 'home', 'app'), { recursive: true });
  await writeFile(join(fs, 'home', 'app', 'data'), 'app data');
  await chown(join(fs, 'home', 'app'), 1000, 1000);
  await chown(join(fs, 'home', 'app', 'data'), 1000, 1001);
  await writeFile(join(fs, 'suid'), '#!/bin/sh\n');
  await chown(join(fs, 'suid'), 0, 0);
  await chmod(join(fs, 'suid'), 0o4755);
  await symlink('/etc/passwd', join(fs, 'link'));
  await extra?.(fs);
  await sn.commit(CHAIN, 'extract');
  const mountAt = async (key: string): Promise<string> => {
    const m = await sn!.mounts(key);
    const target = await mkdtemp(join(dir, 'mnt-'));
    mountAll(m, target);
    mounts.push(target);
    return target;
  };
  return { sn, dir, mountAt };
}

test('a remapped container rootfs shows image files owned by the mapped host ids', { skip: !isRoot && 'needs root' }, async (t) => {
  const { sn, dir, mountAt } = await setup(t);
  await new Remapper(sn).prepare('c1', CHAIN, PLAN, {}, dir);
  const root = await mountAt('c1');

  const etc = await lstat(join(root, 'etc'));
  assert.deepEqual([etc.uid, etc.gid], [200000, 300000]);
  const data = await lstat(join(root, 'home', 'app', 'data'));
  assert.deepEqual([data.uid, data.gid], [201000, 301001]);
  assert.equal(await readFile(join(root, 'home', 'app', 'data'), 'utf8'), 'app data');
  const suid = await lstat(join(root, 'suid'));
  assert.equal(suid.mode & 0o7777, 0o4755, 'chown must not drop the set-uid bit');
  const link = await lstat(join(root, 'link'));
  assert.ok(link.isSymbolicLink());
  assert.deepEqual([link.uid, link.gid], [200000, 300000]);

  // The image layer itself is untouched: other (host-user) containers still see root files.
  await sn.prepare('c-host', CHAIN);
  const hostRoot = await mountAt('c-host');
  assert.equal((await lstat(join(hostRoot, 'etc'))).uid, 0);
  assert.equal((await lstat(join(hostRoot, 'home', 'app', 'data'))).uid, 1000);
});

test('containers with the same mapping share one remapped parent, pruned when unused', { skip: !isRoot && 'needs root' }, async (t) => {
  const { sn, dir } = await setup(t);
  const remapper = new Remapper(sn);
  await Promise.all([remapper.prepare('c1', CHAIN, PLAN, {}, dir), remapper.prepare('c2', CHAIN, PLAN, {}, dir)]);
  const name = remapName(CHAIN, PLAN);
  assert.equal((await sn.stat('c1')).parent, name);
  assert.equal((await sn.stat('c2')).parent, name);
  assert.equal((await sn.list()).filter((s) => s.kind === 'committed').length, 2, 'image layer + one remapped parent');

  assert.deepEqual(await remapper.prune(), [], 'still in use');
  await sn.remove('c1');
  await sn.remove('c2');
  assert.deepEqual(await remapper.prune(), [name]);
  assert.deepEqual(
    (await sn.list()).map((s) => s.key),
    [CHAIN],
  );
});

test('an image file owned by an id outside the mapping fails the prepare and leaves nothing', { skip: !isRoot && 'needs root' }, async (t) => {
  const { sn, dir } = await setup(t, async (fs) => {
    await writeFile(join(fs, 'etc', 'odd'), 'x');
    await chown(join(fs, 'etc', 'odd'), 70000, 0);
  });
  await assert.rejects(new Remapper(sn).prepare('c1', CHAIN, PLAN, {}, dir), (err) => {
    assert.ok(isBerthError(err, 'FailedPrecondition'));
    assert.match(err.message, /"\/etc\/odd" is owned by uid 70000/);
    return true;
  });
  assert.deepEqual(
    (await sn.list()).map((s) => s.key),
    [CHAIN],
  );
  const mountinfo = await readFile('/proc/self/mountinfo', 'utf8');
  assert.ok(!mountinfo.includes(dir), 'no mount left behind');
});

test('hard-linked files are shifted once and file capabilities survive the shift', { skip: !isRoot && 'needs root' }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'berth-remap-tree-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'bin'));
  await writeFile(join(dir, 'bin', 'a'), 'tool');
  await chown(join(dir, 'bin', 'a'), 0, 0);
  await link(join(dir, 'bin', 'a'), join(dir, 'bin', 'b'));
  await writeFile(join(dir, 'bin', 'ping'), 'elf');
  await chmod(join(dir, 'bin', 'ping'), 0o4755);
  // security.capability v2: cap_net_raw (bit 13) permitted + effective flag.
  const caps = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]);
  lsetxattr(join(dir, 'bin', 'ping'), 'security.capability', caps);

  await shiftTree(dir, PLAN);
  for (const f of ['a', 'b']) {
    const st = await lstat(join(dir, 'bin', f));
    assert.deepEqual([st.uid, st.gid], [200000, 300000], `bin/${f} shifted exactly once`);
  }
  const ping = await lstat(join(dir, 'bin', 'ping'));
  assert.deepEqual([ping.uid, ping.mode & 0o7777], [200000, 0o4755]);
  assert.deepEqual(lgetxattr(join(dir, 'bin', 'ping'), 'security.capability'), caps, 'file capabilities written back after chown');
});
