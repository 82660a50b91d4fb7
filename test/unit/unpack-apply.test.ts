import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, mkdir, readFile, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { applyLayer } from '../../src/core/unpack/apply.js';
import { lgetxattr } from '../../src/core/unpack/sys.js';
import { buildTar, chunked, gnuLongNameTar, sha256, tempDir } from '../helpers/tar.js';

const T = new Date(1_500_000_000_000);

test('applyLayer extracts every entry type with ownership, modes, times and xattrs', async (t) => {
  const root = await tempDir(t);
  const big = Buffer.alloc(300_000, 'x');
  const layer = await buildTar([
    { name: 'dir/', type: 'directory', mode: 0o2750, uid: 1000, gid: 1001, mtime: T },
    { name: 'dir/file', content: 'hello', mode: 0o4755, uid: 1000, gid: 1001, mtime: T, pax: { 'SCHILY.xattr.user.note': 'v1' } },
    { name: 'dir/big', content: big },
    { name: 'tmp/', type: 'directory', mode: 0o1777 },
    { name: 'dir/sym', type: 'symlink', linkname: 'file', uid: 1000, gid: 1001, mtime: T },
    { name: 'dir/hard', type: 'link', linkname: 'dir/file' },
    { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
    { name: 'dev/loop9', type: 'block-device', devmajor: 7, devminor: 9, mode: 0o660 },
    { name: 'run/fifo', type: 'fifo', mode: 0o600 },
    { name: 'n/'.repeat(60) + 'long-pax-name', content: 'p' },
  ]);
  const res = await applyLayer(chunked(layer), root);
  assert.equal(res.bytes, layer.length);
  assert.equal(res.diffID, sha256(layer));

  const d = await stat(join(root, 'dir'));
  assert.ok(d.isDirectory());
  assert.equal(d.mode & 0o7777, 0o2750);
  assert.equal(d.uid, 1000);
  assert.equal(d.gid, 1001);
  assert.equal(d.mtimeMs, T.getTime(), 'directory mtime survives children written after it');

  const f = await stat(join(root, 'dir/file'));
  assert.equal(await readFile(join(root, 'dir/file'), 'utf8'), 'hello');
  assert.equal(f.mode & 0o7777, 0o4755, 'setuid kept (chmod after chown)');
  assert.equal(f.uid, 1000);
  assert.equal(f.mtimeMs, T.getTime());
  assert.equal(lgetxattr(join(root, 'dir/file'), 'user.note')?.toString(), 'v1');
  assert.deepEqual(await readFile(join(root, 'dir/big')), big);

  assert.equal((await stat(join(root, 'tmp'))).mode & 0o7777, 0o1777);
  assert.equal(await readlink(join(root, 'dir/sym')), 'file');
  const s = await lstat(join(root, 'dir/sym'));
  assert.equal(s.uid, 1000);
  assert.equal(s.mtimeMs, T.getTime());
  assert.equal((await stat(join(root, 'dir/hard'))).ino, f.ino);

  const cdev = await lstat(join(root, 'dev/null'));
  assert.ok(cdev.isCharacterDevice());
  assert.equal(cdev.rdev, (1 << 8) | 3);
  assert.equal(cdev.mode & 0o777, 0o666);
  const bdev = await lstat(join(root, 'dev/loop9'));
  assert.ok(bdev.isBlockDevice());
  assert.equal(bdev.rdev, (7 << 8) | 9);
  assert.ok((await lstat(join(root, 'run/fifo'))).isFIFO());
  assert.equal(await readFile(join(root, 'n/'.repeat(60) + 'long-pax-name'), 'utf8'), 'p');
});

test('applyLayer reads GNU long names', async (t) => {
  const root = await tempDir(t);
  const name = 'g'.repeat(150) + '/file-with-gnu-long-name';
  await mkdir(join(root, 'g'.repeat(150)));
  await applyLayer(Readable.from([gnuLongNameTar(name, 'gnu')]), root);
  assert.equal(await readFile(join(root, name), 'utf8'), 'gnu');
});

test('applyLayer keeps uids above 2^31 unsigned and rejects ids that do not fit 32 bits', async (t) => {
  const root = await tempDir(t);
  await applyLayer(Readable.from([await buildTar([{ name: 'high', content: 'x', pax: { uid: '3000000000', gid: '2147483649' } }])]), root);
  const st = await stat(join(root, 'high'));
  assert.equal(st.uid, 3_000_000_000);
  assert.equal(st.gid, 2_147_483_649);

  const bad = await buildTar([{ name: 'wrap', content: 'x', pax: { uid: '4294967296' } }]);
  await assert.rejects(applyLayer(Readable.from([bad]), root), { code: 'unpack.bad_id' });
  const neg = await buildTar([{ name: 'neg', content: 'x', pax: { gid: '-1' } }]);
  await assert.rejects(applyLayer(Readable.from([neg]), root), { code: 'unpack.bad_id' });
});

test('applyLayer replaces an earlier entry of the same name and never writes through it', async (t) => {
  const root = await tempDir(t);
  const outside = await tempDir(t);
  const layer = await buildTar([
    { name: 'x', type: 'symlink', linkname: join(outside, 'target') },
    { name: 'x', content: 'inside' },
  ]);
  await applyLayer(Readable.from([layer]), root);
  assert.equal(await readFile(join(root, 'x'), 'utf8'), 'inside');
  await assert.rejects(stat(join(outside, 'target')), { code: 'ENOENT' });
});

test('applyLayer drops trusted.overlay xattrs carried by the layer', async (t) => {
  const root = await tempDir(t);
  const layer = await buildTar([{ name: 'd/', type: 'directory', pax: { 'SCHILY.xattr.trusted.overlay.opaque': 'y' } }]);
  await applyLayer(Readable.from([layer]), root, { mode: 'overlay' });
  assert.equal(lgetxattr(join(root, 'd'), 'trusted.overlay.opaque'), null);
});

test('applyLayer rejects a truncated tar', async (t) => {
  const root = await tempDir(t);
  const layer = await buildTar([{ name: 'f', content: Buffer.alloc(5000, 1) }]);
  await assert.rejects(applyLayer(Readable.from([layer.subarray(0, 2000)]), root));
});

test('applyLayer rejects entry names longer than PATH_MAX', async (t) => {
  const root = await tempDir(t);
  const layer = await buildTar([{ name: 'a/'.repeat(2100) + 'f', content: 'x' }]);
  await assert.rejects(applyLayer(Readable.from([layer]), root), { code: 'unpack.path_too_long' });
});
