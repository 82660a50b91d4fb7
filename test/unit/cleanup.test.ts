// src/cleanup.ts: undos run in reverse; a failed resource undo is reported with its tag and
// keeps the bookkeeping undos (record, name) from running, so nothing is left unpointed-at.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Cleanup } from '../../src/cleanup.js';

test('unwind runs every undo in reverse order and then nothing more', async () => {
  const ran: string[] = [];
  const c = new Cleanup();
  c.pushBookkeeping('name', () => void ran.push('name'));
  c.push('a', () => void ran.push('a'));
  c.push('b', async () => void ran.push('b'));
  const r = await c.unwind();
  assert.deepEqual(ran, ['b', 'a', 'name']);
  assert.deepEqual(r, { failed: [], skipped: [], retry: [] });
  assert.deepEqual(await c.unwind(), { failed: [], skipped: [], retry: [] });
  assert.deepEqual(ran, ['b', 'a', 'name']);
});

test('a failed resource undo: the other resources are still undone, bookkeeping is skipped', async () => {
  const ran: string[] = [];
  const warned: string[] = [];
  const c = new Cleanup<'cni' | 'unpin'>({ warn: (_m, f) => warned.push(String(f?.step)) });
  c.pushBookkeeping('release name', () => void ran.push('name'));
  c.pushBookkeeping('delete record', () => void ran.push('record'));
  c.push('unpin', () => void ran.push('unpin'), 'unpin');
  c.push('cni teardown', () => Promise.reject(new Error('DEL failed')), 'cni');
  c.push('task', () => void ran.push('task'));
  const r = await c.unwind();
  assert.deepEqual(ran, ['task', 'unpin']);
  assert.equal(r.failed.length, 1);
  assert.equal(r.failed[0]!.tag, 'cni');
  assert.equal((r.failed[0]!.error as Error).message, 'DEL failed');
  assert.deepEqual(r.skipped, ['delete record', 'release name']);
  assert.deepEqual(warned, ['cni teardown']);
});

test('a failed bookkeeping undo is logged but orphans nothing', async () => {
  const c = new Cleanup({ warn: () => undefined });
  const ran: string[] = [];
  c.pushBookkeeping('name', () => void ran.push('name'));
  c.pushBookkeeping('record', () => {
    throw new Error('db busy');
  });
  const r = await c.unwind();
  assert.deepEqual(r.failed, []);
  assert.deepEqual(ran, ['name']);
});

test('commit forgets the undos', async () => {
  const c = new Cleanup();
  let ran = false;
  c.push('x', () => (ran = true));
  assert.equal(c.size, 1);
  c.commit();
  await c.unwind();
  assert.equal(ran, false);
});
