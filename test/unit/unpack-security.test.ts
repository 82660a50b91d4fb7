import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { applyLayer } from '../../src/core/unpack/apply.js';
import { RootResolver } from '../../src/core/unpack/resolve.js';
import { buildTar, type TarEntry, tempDir } from '../helpers/tar.js';

/** A root nested two levels inside a sandbox dir, so escapes via ".." land in the sandbox. */
async function setup(t: import('node:test').TestContext) {
  const sandbox = await tempDir(t);
  const root = join(sandbox, 'a', 'root');
  const outside = join(sandbox, 'outside');
  const { mkdir } = await import('node:fs/promises');
  await mkdir(root, { recursive: true });
  await mkdir(outside);
  await writeFile(join(outside, 'secret'), 'host');
  return { sandbox, root, outside };
}

async function apply(root: string, entries: TarEntry[], mode: 'native' | 'overlay' = 'native') {
  return applyLayer(Readable.from([await buildTar(entries)]), root, { mode });
}

async function exists(p: string): Promise<boolean> {
  return lstat(p).then(
    () => true,
    () => false,
  );
}

test('entries with .. or absolute paths stay inside the root', async (t) => {
  const { sandbox, root } = await setup(t);
  const abs = join(sandbox, 'abs-target');
  await apply(root, [
    { name: '../escape1', content: 'x' },
    { name: '../../escape2', content: 'x' },
    { name: 'a/../../../escape3', content: 'x' },
    { name: abs, content: 'x' },
  ]);
  assert.deepEqual((await readdir(sandbox)).sort(), ['a', 'outside']);
  assert.deepEqual(await readdir(join(sandbox, 'a')), ['root']);
  assert.ok(await exists(join(root, 'escape1')));
  assert.ok(await exists(join(root, 'escape3')));
  assert.ok(await exists(join(root, abs)), 'absolute path is re-rooted');
});

test('a symlink planted by an earlier entry is never followed out of the root', async (t) => {
  const { root, outside } = await setup(t);
  await apply(root, [
    { name: 'abs', type: 'symlink', linkname: outside },
    { name: 'abs/secret', content: 'pwned' },
    { name: 'up', type: 'symlink', linkname: '..' },
    { name: 'up/up/outside/secret', content: 'pwned' },
    { name: 'slash', type: 'symlink', linkname: '/' },
    { name: `slash${outside}/new`, content: 'pwned' },
  ]);
  assert.equal(await readFile(join(outside, 'secret'), 'utf8'), 'host');
  assert.deepEqual(await readdir(outside), ['secret']);
  // The writes were re-rooted: they landed under the root instead.
  assert.equal(await readFile(join(root, outside, 'secret'), 'utf8'), 'pwned');
  assert.equal(await readFile(join(root, 'outside', 'secret'), 'utf8'), 'pwned');
  assert.equal(await readFile(join(root, outside, 'new'), 'utf8'), 'pwned');
});

test('a symlink planted by an earlier layer is never followed out of the root', async (t) => {
  const { root, outside } = await setup(t);
  await apply(root, [{ name: 'etc', type: 'symlink', linkname: outside }]);
  await apply(root, [{ name: 'etc/secret', content: 'pwned' }, { name: 'etc/.wh.secret' }]);
  assert.equal(await readFile(join(outside, 'secret'), 'utf8'), 'host');
});

test('a symlink named . or / is rejected and cannot redirect later entries', async (t) => {
  const { root, outside } = await setup(t);
  await assert.rejects(
    apply(root, [
      { name: '.', type: 'symlink', linkname: outside },
      { name: 'secret', content: 'x' },
    ]),
    {
      code: 'unpack.invalid_path',
    },
  );
  await assert.rejects(apply(root, [{ name: './', type: 'symlink', linkname: outside }]), { code: 'unpack.invalid_path' });
  await assert.rejects(apply(root, [{ name: '/', type: 'symlink', linkname: outside }]), { code: 'unpack.invalid_path' });
  assert.ok((await lstat(root)).isDirectory());
  assert.equal(await readFile(join(outside, 'secret'), 'utf8'), 'host');
});

test('hard links may only point at files inside the root, never through symlinks', async (t) => {
  const { root, outside } = await setup(t);
  const secret = join(outside, 'secret');
  await assert.rejects(apply(root, [{ name: 'h1', type: 'link', linkname: secret }]), { code: 'unpack.bad_hardlink' });
  await assert.rejects(apply(root, [{ name: 'h2', type: 'link', linkname: '/etc/passwd' }]), { code: 'unpack.bad_hardlink' });
  await assert.rejects(
    apply(root, [
      { name: 'd', type: 'symlink', linkname: outside },
      { name: 'h3', type: 'link', linkname: 'd/secret' },
    ]),
    { code: 'unpack.bad_hardlink' },
  );
  await assert.rejects(apply(root, [{ name: 'h4', type: 'link', linkname: '../../outside/secret' }]), { code: 'unpack.bad_hardlink' });
  assert.equal((await stat(secret)).nlink, 1);
  assert.equal((await stat('/etc/passwd')).nlink, 1);
});

test('chmod, chown and utimes of a symlink entry never reach its target', async (t) => {
  const { root, outside } = await setup(t);
  const secret = join(outside, 'secret');
  const before = await stat(secret);
  await apply(root, [
    { name: 's', type: 'symlink', linkname: secret, mode: 0o777, uid: 4321, gid: 4321, mtime: new Date(0) },
    { name: 'rel', type: 'symlink', linkname: '../../outside/secret', mode: 0o777, uid: 4321, gid: 4321, mtime: new Date(0) },
  ]);
  const after = await stat(secret);
  assert.equal(after.mode, before.mode);
  assert.equal(after.uid, before.uid);
  assert.equal(after.mtimeMs, before.mtimeMs);
  assert.equal((await lstat(join(root, 's'))).uid, 4321, 'the link itself got the owner');
});

test('whiteouts apply only inside the root and malformed markers are rejected', async (t) => {
  const { root, outside } = await setup(t);
  await apply(root, [{ name: 'l', type: 'symlink', linkname: outside }, { name: 'l/.wh.secret' }, { name: 'l/.wh..wh..opq' }]);
  assert.equal(await readFile(join(outside, 'secret'), 'utf8'), 'host');
  for (const bad of ['.wh.', 'd/.wh..', 'd/.wh...']) {
    await assert.rejects(apply(root, [{ name: bad }]), { code: 'unpack.bad_whiteout' }, bad);
  }
});

test('symlink loops fail instead of hanging', async (t) => {
  const { root } = await setup(t);
  await assert.rejects(
    apply(root, [
      { name: 'a', type: 'symlink', linkname: 'b' },
      { name: 'b', type: 'symlink', linkname: 'a' },
      { name: 'a/x', content: 'x' },
    ]),
    { code: 'unpack.too_many_links' },
  );
});

test('resolving many entries under one deep directory costs lstat calls linear in entries', async (t) => {
  const { root } = await setup(t);
  const deep = Array.from({ length: 200 }, (_, i) => `d${i}`);
  const r = new RootResolver(root);
  for (let i = 0; i < 2000; i++) assert.equal(await r.resolveDir(deep, true), deep.join('/'));
  // Without the per-directory cache every call would lstat all 200 components (400k calls).
  assert.ok(r.lstatCalls <= 200, `lstat calls: ${r.lstatCalls}`);
  assert.ok((await stat(join(root, dirname(deep.join('/'))))).isDirectory());
});

for (const mode of ['native', 'overlay'] as const) {
  test(`${mode}: deferred directory times never land on a host file through a parent replaced by a symlink`, async (t) => {
    const { root, outside } = await setup(t);
    const { utimes } = await import('node:fs/promises');
    await writeFile(join(outside, 'passwd'), 'root:x:0:0::/root:/bin/sh\n');
    await utimes(join(outside, 'passwd'), 1_234_567_890, 1_234_567_890);
    await apply(
      root,
      [
        { name: 'a/', type: 'directory' },
        { name: 'a/passwd/', type: 'directory', mtime: new Date(0) },
        { name: 'a', type: 'symlink', linkname: outside },
        { name: 'kept/', type: 'directory', mtime: new Date(1_500_000_000_000) },
        { name: 'kept/sub/', type: 'directory', mtime: new Date(1_400_000_000_000) },
      ],
      mode,
    );
    assert.equal((await stat(join(outside, 'passwd'))).mtimeMs, 1_234_567_890_000, 'the host file keeps its mtime');
    assert.equal(await readFile(join(outside, 'passwd'), 'utf8'), 'root:x:0:0::/root:/bin/sh\n');
    assert.ok((await lstat(join(root, 'a'))).isSymbolicLink());
    // Directories that stayed get their times.
    assert.equal((await stat(join(root, 'kept'))).mtimeMs, 1_500_000_000_000);
    assert.equal((await stat(join(root, 'kept', 'sub'))).mtimeMs, 1_400_000_000_000);
  });
}

test('unpack path work stays linear: a replaced symlink drops only what depended on it', async (t) => {
  const { root } = await setup(t);
  const depth = 1500;
  const deep = Array.from({ length: depth }, () => 'd').join('/');
  const pairs = 300;
  const entries: TarEntry[] = [{ name: `${deep}/`, type: 'directory' }];
  for (let i = 0; i < pairs; i++) {
    entries.push({ name: 'l', type: 'symlink', linkname: i % 2 ? 'x' : 'y' });
    entries.push({ name: `${deep}/f${i}`, content: 'x' });
  }
  // A symlink the deep path goes through, replaced too: what went through it is re-resolved.
  entries.push({ name: 'via', type: 'symlink', linkname: 'd' });
  entries.push({ name: 'via/viafile', content: 'v' });
  entries.push({ name: 'via', type: 'symlink', linkname: 'e' });
  entries.push({ name: 'e/', type: 'directory' });
  entries.push({ name: 'via/viafile2', content: 'w' });
  const r = await applyLayer(Readable.from([await buildTar(entries)]), root, { mode: 'native' });
  // Without subtree invalidation each pair re-resolves all 1500 levels (450k lstat calls).
  assert.ok(r.work!.pathLookups <= depth + 20 * pairs, `lstat calls: ${r.work!.pathLookups}`);
  assert.equal(await readFile(join(root, deep, `f${pairs - 1}`), 'utf8'), 'x');
  assert.equal(await readFile(join(root, 'd', 'viafile'), 'utf8'), 'v');
  assert.equal(await readFile(join(root, 'e', 'viafile2'), 'utf8'), 'w', 'a resolution through a replaced symlink is not reused');
});

test('native: an opaque marker repeated for one directory reads it once', async (t) => {
  const { root } = await setup(t);
  const { mkdir } = await import('node:fs/promises');
  await mkdir(join(root, 'big'));
  for (let i = 0; i < 50; i++) await writeFile(join(root, 'big', `lower${i}`), 'l');
  const entries: TarEntry[] = [{ name: 'big/', type: 'directory' }];
  for (let i = 0; i < 500; i++) entries.push({ name: `big/f${i}`, content: 'x' });
  for (let i = 0; i < 500; i++) entries.push({ name: 'big/.wh..wh..opq', content: '' });
  const r = await applyLayer(Readable.from([await buildTar(entries)]), root, { mode: 'native' });
  assert.equal(r.work!.dirReads, 1);
  const names = await readdir(join(root, 'big'));
  assert.equal(names.length, 500, "the lower entries are gone, the layer's own stay");
  assert.ok(names.every((n) => n.startsWith('f')));
});
