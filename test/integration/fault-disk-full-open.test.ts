/**
 * Opening berth's SQLite stores on a full disk (issue 12): the WAL index (-shm) is made again at
 * every open and cannot grow on a full filesystem (SQLITE_IOERR_SHMSIZE). Both meta.db and the
 * snapshotter's metadata.db must still open (exclusive locking mode: the index in memory) and
 * read what they hold, or berthd cannot start on a node whose one disk is full. A small tmpfs,
 * filled; needs root.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openMetadata } from '../../src/core/metadata/db.js';
import { MetaStore } from '../../src/core/snapshots/metastore.js';
import { isRoot } from '../helpers/netns.js';
import { fillFilesystem } from '../helpers/faults.js';

const skip = !isRoot() ? 'needs root' : false;

function sh(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
}

test('meta.db and the snapshot metadata open and read on a full disk', { skip }, (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-full-open-'));
  sh('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0700', 'berth-fault-tmpfs', dir]);
  const open: Array<{ close(): void }> = [];
  // The databases close before the unmount (an open file keeps the tmpfs busy).
  t.after(() => {
    for (const d of open) d.close();
    // Lazy: a handle a failed open leaked must not leave the mount behind.
    spawnSync('umount', ['-l', dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  const snapRoot = join(dir, 'snapshots');
  mkdirSync(snapRoot);
  // Made while there is room.
  const db = openMetadata(join(dir, 'meta.db'));
  db.prepare("INSERT INTO names (namespace, name, holder) VALUES ('k8s.io', 'pod-a', 'x')").run();
  db.close();
  new MetaStore(snapRoot).close();

  fillFilesystem(join(dir, 'filler'));
  const full = openMetadata(join(dir, 'meta.db'));
  open.push(full);
  assert.deepEqual(full.prepare('SELECT holder FROM names').all(), [{ holder: 'x' }], 'meta.db reads what it holds');
  const snaps = new MetaStore(snapRoot);
  open.push(snaps);
  assert.deepEqual(snaps.all(), [], 'the snapshot metadata opens');
});
