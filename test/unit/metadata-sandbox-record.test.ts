// Sandbox records v2: the checked state machine, the migration of what the v1 code wrote
// (test/fixtures/metadata-v1.db, made by that code: see make-metadata-v1.mjs), and the
// refusal of records and databases written by a newer berth.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { openMetadata, SCHEMA_VERSION } from '../../src/core/metadata/db.js';
import { ContainerStore, NameStore, SandboxStore } from '../../src/core/metadata/records.js';
import {
  checkSandboxTransition,
  sandboxTransitions,
  SANDBOX_RECORD_VERSION,
  type SandboxRecord,
  type SandboxState,
} from '../../src/core/metadata/sandbox-record.js';
import { BerthError } from '../../src/errors.js';
import { tempDir } from '../helpers/tar.js';

const FIXTURE = fileURLToPath(new URL('../../../test/fixtures/metadata-v1.db', import.meta.url));
const id = (c: string) => c.repeat(64);

function record(over: Partial<SandboxRecord> = {}): SandboxRecord {
  return {
    version: SANDBOX_RECORD_VERSION,
    id: id('9'),
    name: 'k8s_POD_p_default_u_0',
    meta: { name: 'p', namespace: 'default', uid: 'u', attempt: 0 },
    state: 'creating',
    createdAt: '1',
    runtimeHandler: 'runc',
    config: '',
    labels: {},
    annotations: {},
    ips: [],
    sandboxDir: '/x',
    cgroupParent: '/kubepods/berth',
    hostNetwork: false,
    hostIpc: false,
    pause: false,
    networkDown: false,
    extra: {},
    ...over,
  };
}

const code = (c: string) => (err: unknown) => err instanceof BerthError && err.code === c;

test('the sandbox transition table: creating → ready | notready, ready → notready, notready is final', () => {
  const all: SandboxState[] = ['creating', 'ready', 'notready'];
  const legal = new Set(['creating>ready', 'creating>notready', 'ready>notready']);
  for (const from of all) {
    for (const to of all) {
      if (from === to || legal.has(`${from}>${to}`)) assert.doesNotThrow(() => checkSandboxTransition('x', from, to), `${from} → ${to}`);
      else assert.throws(() => checkSandboxTransition('x', from, to), code('sandbox.bad_transition'), `${from} → ${to}`);
    }
  }
  assert.deepEqual(sandboxTransitions.notready, []);
});

test('SandboxStore.update refuses an illegal transition and keeps the stored record', async (t) => {
  const db = openMetadata(join(await tempDir(t), 'meta.db'));
  t.after(() => db.close());
  const store = new SandboxStore(db);
  store.put('k8s.io', record());
  store.update('k8s.io', id('9'), (r) => (r.state = 'ready'));
  store.update('k8s.io', id('9'), (r) => (r.state = 'notready'));
  assert.throws(() => store.update('k8s.io', id('9'), (r) => (r.state = 'ready')), code('sandbox.bad_transition'));
  assert.equal(store.get('k8s.io', id('9'))!.state, 'notready');
});

test('a record with steps left to undo can only be NOTREADY', async (t) => {
  const db = openMetadata(join(await tempDir(t), 'meta.db'));
  t.after(() => db.close());
  const store = new SandboxStore(db);
  store.put('k8s.io', record());
  assert.throws(() => store.update('k8s.io', id('9'), (r) => Object.assign(r, { state: 'ready', leftover: ['cni'] })), code('sandbox.bad_transition'));
  store.update('k8s.io', id('9'), (r) => Object.assign(r, { state: 'notready', leftover: ['cni'] }));
  assert.deepEqual(store.get('k8s.io', id('9'))!.leftover, ['cni']);
});

test('the v1 fixture database (written by the v1 code) migrates to typed v2 sandbox records', async (t) => {
  const path = join(await tempDir(t), 'meta.db');
  copyFileSync(FIXTURE, path);
  const before = new Database(path, { readonly: true });
  assert.equal(before.pragma('user_version', { simple: true }), 1, 'the fixture is a v1 database');
  before.close();

  const db = openMetadata(path);
  t.after(() => db.close());
  assert.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
  const store = new SandboxStore(db);
  const byName = new Map(store.list('k8s.io').map((r) => [r.meta.name, r]));
  assert.equal(byName.size, 5);
  for (const r of byName.values()) assert.equal(r.version, 2);

  const pause = byName.get('pause-ready')!;
  assert.equal(pause.state, 'ready');
  assert.equal(pause.pause, true);
  assert.equal(pause.pid, 4242);
  assert.equal(pause.snapshotKey, id('a'));
  assert.equal(pause.imageRef, 'registry.k8s.io/pause:3.9');
  assert.equal(pause.image, 'sha256:' + '1'.repeat(64));
  assert.deepEqual(pause.pins, { net: `/run/berth/netns/${id('a')}`, ipc: `/run/berth/netns/${id('a')}.ipc`, uts: `/run/berth/netns/${id('a')}.uts` });
  assert.deepEqual(pause.cni, { result: { cniVersion: '1.0.0' }, portMappings: [] });
  assert.equal(pause.networkDown, false);
  assert.deepEqual(pause.extra, {}, 'every v1 extra key became a typed field');

  assert.equal(byName.get('pinned-ready')!.pause, false);

  const stopped = byName.get('stopped')!;
  assert.equal(stopped.state, 'notready');
  assert.equal(stopped.networkDown, true);
  assert.deepEqual(stopped.exit, { status: 137, at: '2026-12-03T10:00:00.000Z' });

  assert.equal(byName.get('creating')!.state, 'creating', "v1's phase 'creating' is the state now");

  const old = byName.get('hostnet-old')!;
  assert.equal(old.hostNetwork, true);
  assert.equal(old.hostIpc, true);
  assert.equal(old.pause, true, 'no pause field in v1 meant a pause ran');
  assert.equal(old.pins, undefined);

  // Containers and names are untouched; the migrated records take updates.
  assert.equal(new ContainerStore(db).get('k8s.io', id('f'))!.state, 'running');
  assert.throws(() => new NameStore(db).reserve('k8s.io', pause.name, 'someone else'), code('name.reserved'));
  store.update('k8s.io', pause.id, (r) => (r.state = 'notready'));
  // Migrated once: opening again changes nothing.
  db.close();
  const again = openMetadata(path);
  assert.equal(new SandboxStore(again).get('k8s.io', pause.id)!.state, 'notready');
  again.close();
});

test('a sandbox record written by a newer berth is refused, naming its version', async (t) => {
  const db = openMetadata(join(await tempDir(t), 'meta.db'));
  t.after(() => db.close());
  db.prepare('INSERT INTO sandboxes (namespace, id, record) VALUES (?, ?, ?)').run('k8s.io', 'n', JSON.stringify({ ...record(), id: 'n', version: 3 }));
  const store = new SandboxStore(db);
  assert.throws(
    () => store.get('k8s.io', 'n'),
    (err: unknown) => code('metadata.record_too_new')(err) && /version 3/.test((err as Error).message),
  );
  assert.throws(() => store.list('k8s.io'), code('metadata.record_too_new'));
});

test('a metadata database with a newer schema than this berth is refused at open', async (t) => {
  const path = join(await tempDir(t), 'meta.db');
  openMetadata(path).close();
  const raw = new Database(path);
  raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
  raw.close();
  assert.throws(
    () => openMetadata(path),
    (err: unknown) => code('metadata.schema_too_new')(err) && (err as Error).message.includes(path),
  );
});
