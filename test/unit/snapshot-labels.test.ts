/**
 * One label convention for snapshots (core/snapshots/labels.ts) and the migration that brings
 * the labels of an earlier berthd to it: test/fixtures/snapshots-v0.db was written by the
 * snapshot metadata code before migrations existed (make-snapshots-v0.mjs), with the old keys.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { LEGACY_SNAPSHOT_LABELS, migrateSnapshotLabels, SnapshotLabel } from '../../src/core/snapshots/index.js';
import { MetaStore, SNAPSHOT_SCHEMA_VERSION, toInfo } from '../../src/core/snapshots/metastore.js';
import { recover } from '../../src/cri/recover.js';
import { hasCode } from '../../src/errors.js';
import { tempDir } from '../helpers/tar.js';
import { newTestContext } from '../helpers/fakes/context.js';

const FIXTURE = fileURLToPath(new URL('../../../test/fixtures/snapshots-v0.db', import.meta.url));
const hex = (c: string): string => c.repeat(64);
const LAYER = `sha256:${hex('1')}`;

async function openFixture(t: import('node:test').TestContext): Promise<{ dir: string; store: MetaStore }> {
  const dir = await tempDir(t, 'berth-snaplabels-');
  await copyFile(FIXTURE, join(dir, 'metadata.db'));
  const store = new MetaStore(dir);
  t.after(() => store.close());
  return { dir, store };
}

test('every snapshot label key berth writes is under berth.io/', () => {
  for (const [name, key] of Object.entries(SnapshotLabel)) assert.match(key, /^berth\.io\/[a-z-]+$/, name);
  for (const [old, now] of Object.entries(LEGACY_SNAPSHOT_LABELS)) {
    assert.doesNotMatch(old, /^berth\.io\//);
    assert.ok((Object.values(SnapshotLabel) as string[]).includes(now), `${old} → ${now}`);
  }
  assert.deepEqual(migrateSnapshotLabels({ 'io.berth/container': 'x', app: 'y' }), { [SnapshotLabel.container]: 'x', app: 'y' });
  assert.deepEqual(migrateSnapshotLabels({ 'io.berth/container': 'old', [SnapshotLabel.container]: 'new' }), { [SnapshotLabel.container]: 'new' });
});

test('snapshots an earlier berthd labelled with the old keys carry the new keys after the upgrade', async (t) => {
  const { dir, store } = await openFixture(t);
  const labels = Object.fromEntries(store.all().map((r) => [r.key, toInfo(r).labels]));
  assert.deepEqual(labels[hex('c')], { [SnapshotLabel.container]: hex('c') });
  assert.deepEqual(labels[hex('d')], { [SnapshotLabel.container]: hex('d'), app: 'kept' }, 'other labels stay');
  assert.deepEqual(labels[`imgvol-${hex('a')}-${hex('3')}`], { [SnapshotLabel.imageVolume]: `sha256:${hex('3')}` });
  assert.deepEqual(labels[hex('a')], { [SnapshotLabel.sandbox]: hex('a') }, 'already in the convention');
  assert.deepEqual(labels[LAYER], { [SnapshotLabel.diffId]: `sha256:${hex('2')}` });
  assert.equal(labels[`${LAYER}-remap-0123456789abcdef`]?.[SnapshotLabel.remapOf], LAYER);
  assert.equal(store.all().length, 6, 'no row lost');
  store.close();
  const db = new Database(join(dir, 'metadata.db'));
  assert.equal(db.pragma('user_version', { simple: true }), SNAPSHOT_SCHEMA_VERSION);
  db.close();
  // Opening again changes nothing (migrations ran once).
  const again = new MetaStore(dir);
  assert.deepEqual(Object.fromEntries(again.all().map((r) => [r.key, toInfo(r).labels])), labels);
  again.close();
});

test('recovery still finds the rootfs snapshots of an earlier berthd that no record claims', async (t) => {
  const { store } = await openFixture(t);
  const rt = await newTestContext(t);
  for (const r of store.all()) {
    const info = toInfo(r);
    if (info.kind === 'active') rt.snapshots.snapshots.set(info.key, { parent: info.parent, labels: info.labels });
  }
  rt.snapshots.snapshots.set('unowned', { parent: LAYER, labels: { app: 'kept' } });
  rt.snapshots.snapshots.set('unlabelled', { labels: {} });
  await recover(rt.ctx, []);
  for (const id of [hex('a'), hex('c'), hex('d')]) assert.equal(rt.snapshots.snapshots.has(id), false, `orphan rootfs ${id.slice(0, 1)}… removed`);
  assert.equal(rt.snapshots.snapshots.has('unowned'), true, 'a snapshot without an owner label is not recovery’s');
});

test('snapshot metadata written by a newer berthd is refused', async (t) => {
  const dir = await tempDir(t, 'berth-snaplabels-');
  const db = new Database(join(dir, 'metadata.db'));
  db.pragma(`user_version = ${SNAPSHOT_SCHEMA_VERSION + 1}`);
  db.close();
  assert.throws(
    () => new MetaStore(dir),
    (err) => hasCode(err, 'snapshot.schema_too_new'),
  );
});
