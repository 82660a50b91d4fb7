/**
 * berthd's start-up against what a container or an earlier install left (issue 12, items 1
 * and 6): a snapshot tree deeper than PATH_MAX and a leftover it cannot remove do not keep it
 * from starting, nor make ImageFsInfo fail; a root and stores that existed with wider modes are
 * 0700 again after the start.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startBerthd } from '../helpers/berthd.js';

function deepTree(dir: string, depth: number): void {
  const cwd = process.cwd();
  process.chdir(dir);
  try {
    for (let i = 0; i < depth; i++) {
      mkdirSync('d');
      process.chdir('d');
    }
    writeFileSync('bottom', 'x');
  } finally {
    process.chdir(cwd);
  }
}

test('berthd starts past deep and unremovable snapshot leftovers, and tightens its dirs at every start', async (t) => {
  const d = await startBerthd({ logLevel: 'info' });
  t.after(() => d.cleanup());
  await d.stop();

  const driverDir = readdirSync(join(d.root, 'snapshots'))[0]!;
  const snaps = join(d.root, 'snapshots', driverDir, 'snapshots');
  mkdirSync(join(snaps, '4242'));
  deepTree(join(snaps, '4242'), 2100);
  mkdirSync(join(snaps, '4343', 'mnt'), { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', join(snaps, '4343', 'mnt')]);
  const wide = [d.root, join(d.root, 'snapshots'), join(d.root, 'snapshots', driverDir), snaps, join(d.root, 'content')];
  for (const p of wide) chmodSync(p, 0o755);

  try {
    await d.restart();
    const v = await d.cri.runtime.version({});
    assert.ok(v.runtimeName.length > 0);
    const fs = await d.cri.image.imageFsInfo({});
    assert.equal(fs.imageFilesystems.length, 1);
  } finally {
    execFileSync('umount', ['-l', join(snaps, '4343', 'mnt')]);
  }
  assert.equal(existsSync(join(snaps, '4242')), false, 'the deep orphan was removed');
  assert.match(d.log(), /cannot remove a leftover directory, skipped.*4343/);
  for (const p of wide) assert.equal((statSync(p).mode & 0o7777).toString(8), '700', `${p} is 0700`);
});
