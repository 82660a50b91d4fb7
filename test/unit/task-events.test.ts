// The one task event monitor (src/cri/task-events.ts): building the handler tables subscribes to
// nothing; watchTaskEvents subscribes once to exits and once to OOMs and sends each event to the
// record its id names (a pod sandbox's pause, a container), and ignores ids no record names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { KeyedLock } from '../../src/keyed-lock.js';
import type { RuntimeContext } from '../../src/cri/server/runtime-context.js';
import { sandboxHandlers } from '../../src/cri/server/handlers-sandbox.js';
import { containerHandlers } from '../../src/cri/server/handlers-container.js';
import { observeHandlers } from '../../src/cri/server/handlers-observe.js';
import { watchTaskEvents } from '../../src/cri/task-events.js';
import { until } from '../helpers/process.js';

interface Rec {
  id: string;
  state: string;
  pid?: number;
  extra: Record<string, unknown>;
  reason?: string;
  exit?: { status: number; at: string };
}

/** Stores of records by id, a task manager that is an event emitter recording deletes. */
function fakeCtx(sandboxes: Rec[], containers: Rec[]) {
  const deleted: string[] = [];
  const warnings: string[] = [];
  const store = (list: Rec[]) => ({
    get: (_ns: string, id: string) => list.find((r) => r.id === id),
    update: (_ns: string, id: string, fn: (r: Rec) => void) => {
      const r = list.find((x) => x.id === id);
      if (r) fn(r);
      return r;
    },
    all: () => list.map((record) => ({ namespace: 'k8s.io', record })),
    list: () => list,
  });
  const tasks = Object.assign(new EventEmitter(), {
    delete: async (_ns: string, id: string) => {
      deleted.push(id);
    },
  });
  const log = {
    debug: () => undefined,
    info: () => undefined,
    warn: (m: string) => warnings.push(m),
    error: (m: string) => warnings.push(m),
    child: () => log,
  };
  const ctx = { sandboxes: store(sandboxes), containers: store(containers), tasks, locks: new KeyedLock(), log } as unknown as RuntimeContext;
  return { ctx, tasks, deleted, warnings };
}

const exit = (containerId: string, id = '') => ({ namespace: 'k8s.io', containerId, id, pid: 10, exitStatus: 137, exitedAt: new Date(0) });

test('building the handler tables subscribes to no task event; the monitor subscribes once each', () => {
  const { ctx, tasks } = fakeCtx([], []);
  sandboxHandlers(ctx);
  containerHandlers(ctx);
  observeHandlers(ctx);
  assert.equal(tasks.listenerCount('exit'), 0);
  assert.equal(tasks.listenerCount('oom'), 0);
  watchTaskEvents(ctx);
  assert.equal(tasks.listenerCount('exit'), 1);
  assert.equal(tasks.listenerCount('oom'), 1);
});

test('a pause exit makes its pod NOTREADY and deletes the pause task; an exec exit does not', async () => {
  const pod: Rec = { id: 'pod1', state: 'ready', pid: 10, extra: {} };
  const { ctx, tasks, deleted, warnings } = fakeCtx([pod], []);
  watchTaskEvents(ctx);
  tasks.emit('exit', exit('pod1', 'exec1'));
  tasks.emit('exit', exit('pod1'));
  await until(() => deleted.length === 1, 'pause task deleted');
  assert.equal(pod.state, 'notready');
  assert.equal(pod.pid, undefined);
  assert.equal(pod.exit?.status, 137, 'the pause exit status is recorded');
  assert.equal(pod.exit?.at, new Date(0).toISOString());
  assert.deepEqual(deleted, ['pod1']);
  assert.deepEqual(warnings, []);
});

test('an OOM marks the container, never a sandbox; ids no record names are ignored (handled synchronously)', () => {
  const c: Rec = { id: 'c1', state: 'exited', extra: {}, reason: 'Error' };
  const pod: Rec = { id: 'pod1', state: 'ready', extra: {} };
  const { ctx, tasks, deleted, warnings } = fakeCtx([pod], [c]);
  watchTaskEvents(ctx);
  tasks.emit('oom', { namespace: 'k8s.io', containerId: 'c1' });
  assert.equal(c.extra['oomKilled'], true);
  assert.equal(c.reason, 'OOMKilled', 'an exit recorded first gets the OOM reason');
  tasks.emit('oom', { namespace: 'k8s.io', containerId: 'pod1' });
  assert.equal(pod.extra['oomKilled'], undefined);
  tasks.emit('exit', exit('stranger'));
  tasks.emit('oom', { namespace: 'k8s.io', containerId: 'stranger' });
  assert.deepEqual(deleted, []);
  assert.equal(pod.state, 'ready');
  assert.deepEqual(warnings, []);
});
