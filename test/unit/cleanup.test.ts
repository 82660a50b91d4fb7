// src/cleanup.ts: undos run in reverse; a failed resource undo is reported with its tag and
// keeps the bookkeeping undos (record, name) from running, so nothing is left unpointed-at;
// undos that failed and may run again come back for BookkeepingRetries.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BookkeepingRetries, Cleanup } from '../../src/cleanup.js';

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

test('failed forgets (and resource undos pushed with retry) come back in retry; BookkeepingRetries runs them until they succeed', async () => {
  const c = new Cleanup({ warn: () => undefined });
  let full = true;
  const ran: string[] = [];
  const forget = (what: string) => () => {
    if (full) throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
    ran.push(what);
  };
  c.push('release name', forget('name'), undefined, { retry: true });
  c.pushBookkeeping('delete record', forget('record'));
  c.push('unpin', () => void ran.push('unpin'));
  const r = await c.unwind();
  assert.deepEqual(ran, ['unpin']);
  assert.deepEqual(
    r.retry.map((u) => u.what),
    ['delete record', 'release name'],
  );
  assert.deepEqual(
    r.failed.map((f) => f.what),
    ['release name'],
    'a resource undo that failed is reported whether or not it is retried',
  );

  const warned: string[] = [];
  const retries = new BookkeepingRetries(60_000);
  retries.add(r.retry, { warn: (_m, f) => warned.push(String(f?.step)) });
  assert.deepEqual(warned, ['delete record', 'release name']);
  await retries.flush();
  assert.equal(retries.size, 2, 'still failing: kept');
  full = false;
  await retries.flush();
  assert.equal(retries.size, 0);
  assert.deepEqual(ran, ['unpin', 'record', 'name'], 'run again in the order they failed');
  retries.close();
});

test('BookkeepingRetries retries on its own timer while any is pending', async () => {
  const retries = new BookkeepingRetries(20);
  let tries = 0;
  retries.add([
    {
      what: 'x',
      fn: () => {
        if (++tries < 3) throw new Error('not yet');
      },
      error: new Error('first'),
    },
  ]);
  for (let i = 0; i < 500 && retries.size > 0; i++) await new Promise((res) => setTimeout(res, 10));
  assert.equal(retries.size, 0, 'the timer retried until it succeeded');
  assert.equal(tries, 3);
  retries.close();
});

test('a flush while a pass runs (the timer) waits for it: every undo pending at the call has run when it resolves', async () => {
  const retries = new BookkeepingRetries(60_000);
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const ran: string[] = [];
  retries.add([
    { what: 'slow', fn: async () => (await gate, void ran.push('slow')), error: new Error('full') },
    { what: 'release name', fn: () => void ran.push('name'), error: new Error('full') },
  ]);
  const timers = retries.flush();
  let done = false;
  const mine = retries.flush().then(() => (done = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(done, false, 'the second flush waits for the pass in progress');
  release();
  await mine;
  assert.deepEqual(ran, ['slow', 'name'], 'the name was released before the second flush resolved');
  await timers;
  assert.equal(retries.size, 0);
  retries.close();
});

test('BookkeepingRetries keeps at most maxPending undos, dropping the oldest with a warning', async () => {
  const warned: string[] = [];
  const log = { warn: (m: string, f?: Record<string, unknown>) => warned.push(`${m}: ${String(f?.step)}`) };
  const retries = new BookkeepingRetries(60_000, 3);
  const failing = (what: string) => ({
    what,
    fn: () => {
      throw new Error('full');
    },
    error: new Error('full'),
  });
  retries.add(['a', 'b', 'c', 'd', 'e'].map(failing), log);
  assert.equal(retries.size, 3);
  assert.equal(warned.filter((w) => w.includes('dropped')).length, 2);
  assert.ok(warned.some((w) => w.includes('dropped') && w.endsWith(': a')));
  await retries.flush();
  assert.equal(retries.size, 3, 'failing again: still kept, still bounded');
  retries.close();
});
