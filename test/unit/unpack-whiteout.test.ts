import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { applyLayer } from '../../src/core/unpack/apply.js';
import { lgetxattr } from '../../src/core/unpack/sys.js';
import { parseWhiteout } from '../../src/core/unpack/whiteout.js';
import { buildTar, type TarEntry, tempDir } from '../helpers/tar.js';

const base: TarEntry[] = [
  { name: 'a/', type: 'directory' },
  { name: 'a/f1', content: '1' },
  { name: 'a/f2', content: '2' },
  { name: 'd/', type: 'directory', mode: 0o750, uid: 7 },
  { name: 'd/x', content: 'x' },
  { name: 'd/sub/y', content: 'y' },
];

async function apply(root: string, entries: TarEntry[], opts: Parameters<typeof applyLayer>[2] = {}) {
  return applyLayer(Readable.from([await buildTar(entries)]), root, opts);
}

test('native mode: .wh.NAME deletes lower content and an opaque dir keeps only this layer', async (t) => {
  const root = await tempDir(t);
  await apply(root, base);
  await apply(root, [
    { name: 'a/.wh.f1' },
    { name: 'd/new', content: 'n' }, // written before the opaque marker: must survive it
    { name: 'd/.wh..wh..opq' },
    { name: 'd/later', content: 'l' },
  ]);
  assert.deepEqual(await readdir(join(root, 'a')), ['f2']);
  assert.deepEqual((await readdir(join(root, 'd'))).sort(), ['later', 'new']);
});

test('native mode: a whiteout of a directory removes the whole subtree', async (t) => {
  const root = await tempDir(t);
  await apply(root, base);
  await apply(root, [{ name: '.wh.d' }]);
  assert.deepEqual((await readdir(root)).sort(), ['a']);
});

test('overlay mode: whiteouts become 0/0 char devices and opaque dirs get the overlay xattr', async (t) => {
  const lower = await tempDir(t);
  const upper = await tempDir(t);
  await apply(lower, base);
  await apply(upper, [{ name: 'a/.wh.f1' }, { name: 'd/.wh..wh..opq' }, { name: 'd/new', content: 'n' }], {
    mode: 'overlay',
    lowers: [lower],
  });
  const wh = await lstat(join(upper, 'a/f1'));
  assert.ok(wh.isCharacterDevice());
  assert.equal(wh.rdev, 0);
  assert.equal(lgetxattr(join(upper, 'd'), 'trusted.overlay.opaque')?.toString(), 'y');
  assert.equal(await readFile(join(upper, 'd/new'), 'utf8'), 'n');
  // Parent dirs created in the upper dir keep the lower dir's owner and mode.
  const d = await stat(join(upper, 'd'));
  assert.equal(d.mode & 0o7777, 0o750);
  assert.equal(d.uid, 7);
  // Lower content is untouched.
  assert.deepEqual((await readdir(join(lower, 'a'))).sort(), ['f1', 'f2']);
});

test('overlay mode: a parent that is a symlink in a lower layer resolves inside the upper dir', async (t) => {
  const lower = await tempDir(t);
  const upper = await tempDir(t);
  await mkdir(join(lower, 'usr/lib'), { recursive: true });
  await apply(lower, [{ name: 'lib', type: 'symlink', linkname: 'usr/lib' }]);
  await apply(upper, [{ name: 'lib/libx.so', content: 'so' }], { mode: 'overlay', lowers: [lower] });
  assert.equal(await readFile(join(upper, 'usr/lib/libx.so'), 'utf8'), 'so');
  await assert.rejects(lstat(join(upper, 'lib')), { code: 'ENOENT' });
});

test('parseWhiteout classifies markers and rejects malformed ones', () => {
  assert.deepEqual(parseWhiteout('file'), { kind: 'none' });
  assert.deepEqual(parseWhiteout('.wh..wh..opq'), { kind: 'opaque' });
  assert.deepEqual(parseWhiteout('.wh..wh.plnk'), { kind: 'meta' });
  assert.deepEqual(parseWhiteout('.wh.name'), { kind: 'delete', name: 'name' });
  for (const bad of ['.wh.', '.wh..', '.wh...']) assert.throws(() => parseWhiteout(bad), { code: 'unpack.bad_whiteout' });
});

test('overlay mode: a directory entry replacing a lower-layer symlink receives later entries', async (t) => {
  const lower = await tempDir(t);
  const upper = await tempDir(t);
  await mkdir(join(lower, 'real'));
  await apply(lower, [{ name: 'ln', type: 'symlink', linkname: 'real' }]);
  await apply(
    upper,
    [
      { name: 'ln/a', content: 'via link' },
      { name: 'ln/', type: 'directory' },
      { name: 'ln/b', content: 'in dir' },
    ],
    { mode: 'overlay', lowers: [lower] },
  );
  assert.equal(await readFile(join(upper, 'real/a'), 'utf8'), 'via link');
  assert.equal(await readFile(join(upper, 'ln/b'), 'utf8'), 'in dir');
});
