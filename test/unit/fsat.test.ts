/** src/fsat.ts: fd-relative removal and du of trees a container wrote. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeTree, removeTreeSync, treeUsage, treeUsageSync } from '../../src/fsat.js';
import { tempDir } from '../helpers/tar.js';

test('names that are not UTF-8 are measured and removed byte for byte', async (t) => {
  const dir = await tempDir(t);
  const tree = join(dir, 't');
  mkdirSync(tree);
  const raw = Buffer.concat([Buffer.from(tree + '/'), Buffer.from([0xff, 0xfe, 0x41])]);
  mkdirSync(raw);
  writeFileSync(Buffer.concat([raw, Buffer.from('/'), Buffer.from([0xc3, 0x28])]), 'x');
  const u = treeUsageSync(tree);
  assert.equal(u.inodes, 3);
  assert.equal(u.errors, 0);
  await removeTree(tree);
  assert.equal(existsSync(tree), false);
});

test('a symlink given as the tree is removed itself, never followed; a missing path is fine', async (t) => {
  const dir = await tempDir(t);
  const target = join(dir, 'target');
  mkdirSync(target);
  writeFileSync(join(target, 'keep'), 'k');
  symlinkSync(target, join(dir, 'link'));
  assert.deepEqual(await treeUsage(join(dir, 'link')), { size: 0, inodes: 0, errors: 0 });
  removeTreeSync(join(dir, 'link'));
  assert.equal(existsSync(join(dir, 'link')), false);
  assert.deepEqual(readdirSync(target), ['keep']);
  await removeTree(join(dir, 'missing'));
});

test('hard links count once; symlinks inside count as themselves', async (t) => {
  const dir = await tempDir(t);
  writeFileSync(join(dir, 'a'), Buffer.alloc(64 * 1024, 1));
  const { linkSync } = await import('node:fs');
  linkSync(join(dir, 'a'), join(dir, 'b'));
  symlinkSync('/etc', join(dir, 'etc'));
  const u = await treeUsage(dir);
  assert.equal(u.inodes, 3, 'the dir, one inode for a and b, the symlink');
  assert.ok(u.size >= 64 * 1024 && u.size < 2 * 64 * 1024 + 16 * 1024, `size ${u.size}`);
  assert.ok(lstatSync('/etc').isDirectory());
});
