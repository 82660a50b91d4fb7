// Pod sandbox handler flows without root (containerd's newTestCRIService idea): the real
// handlers, stores and locks over fakes of the task layer, CNI, the pod's kernel objects,
// snapshots and images (test/helpers/fakes/), with a clock the test advances. Covers unwinding
// at each failing step, failed undos kept as a NOTREADY leftover and finished later (Stop,
// Remove, recovery), a retried RunPodSandbox joining the first, the sandbox lock's order, and
// grace/kill-wait timers that run in no real time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create, fromBinary } from '@bufbuild/protobuf';
import {
  ListPodSandboxResponseSchema,
  NamespaceMode,
  PodSandboxConfigSchema,
  PodSandboxState,
  type PodSandboxConfig,
} from '../../src/api/cri/runtime/v1/api_pb.js';
import { runPodSandbox } from '../../src/cri/sandbox/run.js';
import { stopPodSandbox } from '../../src/cri/sandbox/stop.js';
import { removePodSandbox } from '../../src/cri/sandbox/remove.js';
import { podSandboxStatus, sandboxConfigKept } from '../../src/cri/sandbox/status.js';
import { listPodSandbox } from '../../src/cri/sandbox/list.js';
import { handlePauseExit } from '../../src/cri/sandbox/events.js';
import { stopContainerTask } from '../../src/cri/container/lifecycle.js';
import { recover } from '../../src/cri/recover.js';
import { sandboxName } from '../../src/cri/sandbox/common.js';
import { BerthError } from '../../src/errors.js';
import { EncodedResponse } from '../../src/cri/server/grpc.js';
import { newTestContext, putRunningContainer, type TestRuntime } from '../helpers/fakes/context.js';
import { until } from '../helpers/process.js';

const NS = 'k8s.io';
const call = () => ({ namespace: NS, signal: new AbortController().signal });
let uidSeq = 0;

/** A pod config; `pause` gives it a shared pid namespace (so a pause container runs). */
function pod(o: { name?: string; pause?: boolean; attempt?: number; uid?: string } = {}): PodSandboxConfig {
  return create(PodSandboxConfigSchema, {
    metadata: { name: o.name ?? 'web', namespace: 'default', uid: o.uid ?? `uid-${++uidSeq}`, attempt: o.attempt ?? 0 },
    hostname: o.name ?? 'web',
    dnsConfig: { servers: ['198.18.0.53'] },
    linux: { securityContext: { namespaceOptions: { pid: o.pause ? NamespaceMode.POD : NamespaceMode.CONTAINER } } },
  });
}

const run = (rt: TestRuntime, config: PodSandboxConfig) =>
  runPodSandbox(rt.ctx)({ $typeName: 'runtime.v1.RunPodSandboxRequest', config, runtimeHandler: '' }, call()).then((r) => r.podSandboxId!);
const stop = (rt: TestRuntime, id: string) => stopPodSandbox(rt.ctx)({ $typeName: 'runtime.v1.StopPodSandboxRequest', podSandboxId: id }, call());
const remove = (rt: TestRuntime, id: string) => removePodSandbox(rt.ctx)({ $typeName: 'runtime.v1.RemovePodSandboxRequest', podSandboxId: id }, call());
const status = (rt: TestRuntime, id: string) =>
  podSandboxStatus(rt.ctx)({ $typeName: 'runtime.v1.PodSandboxStatusRequest', podSandboxId: id, verbose: true }, call());
// ListPodSandbox answers encoded (its answer cache): decoded here as a client would.
const list = (rt: TestRuntime) =>
  listPodSandbox(rt.ctx)({ $typeName: 'runtime.v1.ListPodSandboxRequest' }, call()).then((r) =>
    r instanceof EncodedResponse ? fromBinary(ListPodSandboxResponseSchema, r.bytes).items : (r.items ?? []),
  );

const injected = (step: string) => (err: unknown) => err instanceof Error && err.message === `injected ${step} failure`;
const code = (c: string) => (err: unknown) => err instanceof BerthError && err.code === c;

/** Nothing of any pod is left: no record, pin, shm, IP, task, snapshot. */
async function assertNothingLeft(rt: TestRuntime): Promise<void> {
  assert.deepEqual(rt.ctx.sandboxes.list(NS), [], 'no record');
  assert.deepEqual([...rt.pods.pinned], [], 'no pinned namespace or netns');
  assert.deepEqual([...rt.pods.shm], [], 'no shm mount');
  assert.deepEqual([...rt.cni.attached.keys()], [], 'no pod IP');
  assert.deepEqual(rt.tasks.list(), [], 'no task');
  assert.deepEqual([...rt.snapshots.snapshots.keys()], [], 'no snapshot');
}

test('a pod without a shared pid namespace: pins, shm, CNI and READY, no pause task', async (t) => {
  const rt = await newTestContext(t);
  const id = await run(rt, pod());
  const rec = rt.ctx.sandboxes.get(NS, id)!;
  assert.equal(rec.state, 'ready');
  assert.equal(rec.pause, false);
  assert.deepEqual(rec.ips, [`${rt.cni.attached.get(id)}/16`]);
  assert.equal(rt.pods.pinned.size, 3, 'net, ipc and uts pinned');
  assert.equal(rt.pods.shm.size, 1);
  assert.deepEqual(rt.tasks.list(), []);
  const s = await status(rt, id);
  assert.equal(s.status!.state, PodSandboxState.SANDBOX_READY);
  assert.equal(s.status!.network!.ip, rt.cni.attached.get(id));
});

test('a pod sharing a pid namespace runs a pause task on a snapshot of the sandbox image', async (t) => {
  const rt = await newTestContext(t);
  const id = await run(rt, pod({ pause: true }));
  const rec = rt.ctx.sandboxes.get(NS, id)!;
  assert.equal(rec.state, 'ready');
  assert.ok(rec.pid && rec.pid > 0);
  assert.deepEqual(
    rt.tasks.list().map((x) => x.id),
    [id],
  );
  assert.ok(rt.snapshots.snapshots.has(id));
  assert.equal(rec.imageRef, rt.ctx.settings.sandboxImage);
});

for (const step of ['pods.pin', 'pods.mount-shm', 'cni.add', 'snapshots.prepare', 'tasks.create', 'tasks.start']) {
  test(`RunPodSandbox failing at ${step} unwinds everything and frees the name`, async (t) => {
    const rt = await newTestContext(t);
    const cfg = pod({ pause: true });
    rt.faults.fail(step, undefined, 1);
    await assert.rejects(run(rt, cfg), injected(step));
    await assertNothingLeft(rt);
    // The name is free: the same pod runs now.
    const id = await run(rt, cfg);
    assert.equal(rt.ctx.sandboxes.get(NS, id)!.state, 'ready');
  });
}

test("CNI ADD's undo is on the stack before the ADD starts: a failed ADD's IP is released", async (t) => {
  const rt = await newTestContext(t);
  rt.faults.fail('cni.add', undefined, 1);
  await assert.rejects(run(rt, pod()), injected('cni.add'));
  assert.equal(rt.faults.count('cni.del'), 1, 'DEL ran for the failed ADD');
  assert.deepEqual([...rt.cni.attached.keys()], []);
});

test('an ADD still running when another step fails finishes before its DEL', async (t) => {
  const rt = await newTestContext(t);
  const add = rt.faults.hold('cni.add');
  rt.faults.fail('tasks.start', undefined, 1);
  const running = run(rt, pod({ pause: true }));
  await add.reached;
  await until(() => rt.faults.count('tasks.start') === 1, 'the pause start to fail');
  assert.equal(rt.faults.count('cni.del'), 0, 'no DEL while the ADD runs');
  add.release();
  await assert.rejects(running, injected('tasks.start'));
  const calls = rt.faults.calls;
  assert.ok(calls.lastIndexOf('cni.add') < calls.indexOf('cni.del'));
  await assertNothingLeft(rt);
});

test('a failed CNI DEL while unwinding keeps the pod NOTREADY with its leftover and its name', async (t) => {
  const rt = await newTestContext(t);
  const cfg = pod({ pause: true });
  rt.faults.fail('tasks.start', undefined, 1);
  rt.faults.fail('cni.del', new Error('DEL failed: plugin gone'), 1);
  await assert.rejects(run(rt, cfg), injected('tasks.start'));
  assert.equal(rt.ctx.sandboxes.list(NS).length, 1, 'the record stays');
  const rec = rt.ctx.sandboxes.list(NS)[0]!;
  assert.equal(rec.state, 'notready');
  assert.deepEqual(rec.leftover, ['cni']);
  assert.equal(rt.cni.attached.size, 1, 'the IP is still held: the record points at it');
  // The other resources were undone all the same.
  assert.deepEqual([...rt.pods.pinned], []);
  assert.deepEqual([...rt.pods.shm], []);
  assert.deepEqual(rt.tasks.list(), []);
  // kubelet sees a NOTREADY pod; the same name is still taken by it.
  const items = await list(rt);
  assert.deepEqual(
    items.map((i) => [i.id, i.state]),
    [[rec.id, PodSandboxState.SANDBOX_NOTREADY]],
  );
  const info = (await status(rt, rec.id)).info?.info;
  assert.ok(info, 'verbose info');
  assert.deepEqual(JSON.parse(info).leftover, ['cni']);
  await assert.rejects(run(rt, cfg), code('name.reserved'));
  assert.ok(rt.warnings.some((w) => w.includes('could not undo everything')));
});

test('StopPodSandbox finishes a leftover; RemovePodSandbox then frees the name', async (t) => {
  const rt = await newTestContext(t);
  const cfg = pod({ pause: true });
  rt.faults.fail('tasks.create', undefined, 1);
  rt.faults.fail('cni.del', undefined, 1);
  await assert.rejects(run(rt, cfg), injected('tasks.create'));
  const id = rt.ctx.sandboxes.list(NS)[0]!.id;
  await stop(rt, id);
  const rec = rt.ctx.sandboxes.get(NS, id)!;
  assert.equal(rec.leftover, undefined, 'nothing left to undo');
  assert.equal(rec.networkDown, true);
  assert.deepEqual([...rt.cni.attached.keys()], []);
  await remove(rt, id);
  await assertNothingLeft(rt);
  await run(rt, cfg);
});

test('RemovePodSandbox alone finishes a leftover (unpin failed) and removes the record', async (t) => {
  const rt = await newTestContext(t);
  rt.faults.fail('cni.add', undefined, 1);
  rt.faults.fail('pods.unpin', undefined, 1);
  await assert.rejects(run(rt, pod()), injected('cni.add'));
  const rec = rt.ctx.sandboxes.list(NS)[0]!;
  assert.deepEqual(rec.leftover, ['unpin']);
  assert.ok(rt.pods.pinned.size > 0);
  await remove(rt, rec.id);
  await assertNothingLeft(rt);
});

test('recovery finishes a NOTREADY leftover and keeps the record for kubelet to remove', async (t) => {
  const rt = await newTestContext(t);
  rt.faults.fail('tasks.create', undefined, 1);
  rt.faults.fail('cni.del', undefined, 1);
  await assert.rejects(run(rt, pod({ pause: true })), injected('tasks.create'));
  const id = rt.ctx.sandboxes.list(NS)[0]!.id;
  await recover(rt.ctx, []);
  const rec = rt.ctx.sandboxes.get(NS, id)!;
  assert.equal(rec.state, 'notready');
  assert.equal(rec.leftover, undefined);
  assert.deepEqual([...rt.cni.attached.keys()], []);
});

test('recovery tears down a pod whose RunPodSandbox was interrupted (state creating)', async (t) => {
  const rt = await newTestContext(t);
  const id = await run(rt, pod({ pause: true }));
  // As if berthd died before the last step.
  const raw = rt.ctx.sandboxes.get(NS, id)!;
  rt.ctx.sandboxes.put(NS, { ...raw, state: 'creating' });
  await recover(rt.ctx, []);
  await assertNothingLeft(rt);
  await run(rt, pod({ pause: true, uid: raw.meta.uid }));
});

test('a RunPodSandbox retried while the first runs waits for it and returns the same id', async (t) => {
  const rt = await newTestContext(t);
  const cfg = pod();
  const add = rt.faults.hold('cni.add');
  const first = run(rt, cfg);
  await add.reached;
  const second = run(rt, cfg);
  add.release();
  const [a, b] = await Promise.all([first, second]);
  assert.equal(a, b);
  assert.equal(rt.faults.count('pods.pin'), 1, 'one pod made');
  assert.equal(rt.ctx.sandboxes.list(NS).length, 1);
  assert.equal(rt.ctx.sandboxRuns.size, 0, 'nothing in flight afterwards');
});

test('a retry of a failing RunPodSandbox gets its error; the name is free afterwards', async (t) => {
  const rt = await newTestContext(t);
  const cfg = pod();
  const add = rt.faults.hold('cni.add');
  rt.faults.fail('cni.add', undefined, 1);
  const first = run(rt, cfg);
  await add.reached;
  const second = run(rt, cfg);
  add.release();
  await assert.rejects(first, injected('cni.add'));
  await assert.rejects(second, injected('cni.add'));
  await assertNothingLeft(rt);
  await run(rt, cfg);
});

test('another attempt of the same pod is not joined to the one in flight', async (t) => {
  const rt = await newTestContext(t);
  const add = rt.faults.hold('cni.add');
  const first = run(rt, pod({ uid: 'same', attempt: 0 }));
  await add.reached;
  const second = await run(rt, pod({ uid: 'same', attempt: 1 }));
  add.release();
  assert.notEqual(await first, second);
  assert.deepEqual(
    rt.ctx.sandboxes
      .list(NS)
      .map((r) => r.name)
      .sort(),
    [
      sandboxName({ name: 'web', namespace: 'default', uid: 'same', attempt: 0 }),
      sandboxName({ name: 'web', namespace: 'default', uid: 'same', attempt: 1 }),
    ].sort(),
  );
});

test('Stop and Remove of one pod take the sandbox lock in turn: Remove starts after Stop ends', async (t) => {
  const rt = await newTestContext(t);
  const id = await run(rt, pod());
  rt.faults.calls.length = 0;
  const del = rt.faults.hold('cni.del');
  const stopping = stop(rt, id);
  await del.reached;
  const removing = remove(rt, id);
  // Remove waits on the lock: nothing of it runs while Stop holds it.
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(rt.faults.calls, ['pods.unmount-shm', 'cni.del']);
  del.release();
  await Promise.all([stopping, removing]);
  const calls = rt.faults.calls;
  // Stop: shm, DEL, netns, unpin; then Remove's own stop (nothing left to DEL) and its dirs.
  assert.deepEqual(calls.slice(0, 4), ['pods.unmount-shm', 'cni.del', 'pods.remove-netns', 'pods.unpin']);
  assert.equal(rt.faults.count('cni.del'), 1, 'the network came down once');
  await assertNothingLeft(rt);
});

test('a pause exit makes the pod NOTREADY with its exit status and deletes the pause task', async (t) => {
  const rt = await newTestContext(t);
  const id = await run(rt, pod({ pause: true }));
  const exited = new Promise<void>((r) => rt.tasks.once('exit', () => r()));
  rt.tasks.exit(NS, id, 137);
  await exited;
  const e = { namespace: NS, containerId: id, id: '', pid: 0, exitStatus: 137, exitedAt: new Date('2026-12-03T12:00:00Z') };
  await handlePauseExit(rt.ctx, e);
  const rec = rt.ctx.sandboxes.get(NS, id)!;
  assert.equal(rec.state, 'notready');
  assert.equal(rec.pid, undefined);
  assert.deepEqual(rec.exit, { status: 137, at: '2026-12-03T12:00:00.000Z' });
  assert.deepEqual(rt.tasks.list(), []);
  // NOTREADY is final: a late update to READY is refused by the store.
  assert.throws(() => rt.ctx.sandboxes.update(NS, id, (r) => (r.state = 'ready')), code('sandbox.bad_transition'));
});

test('a pause that outlives SIGKILL is deleted after the kill wait, on the test clock', async (t) => {
  const rt = await newTestContext(t);
  const id = await run(rt, pod({ pause: true }));
  rt.tasks.ignore.set(id, [9]);
  let done = false;
  const stopping = stop(rt, id).then(() => (done = true));
  await until(() => rt.clock.pending() === 1, 'the kill wait timer');
  assert.deepEqual(rt.tasks.signalsOf(NS, id), [9]);
  assert.equal(done, false, 'waits for the pause to die');
  rt.clock.advance(10_000);
  await stopping;
  assert.deepEqual(rt.tasks.list(), [], 'deleted once the wait ran out');
  assert.equal(rt.ctx.sandboxes.get(NS, id)!.state, 'notready');
});

test('a container that ignores its stop signal is killed when the grace period ends, on the test clock', async (t) => {
  const rt = await newTestContext(t);
  const sb = await run(rt, pod());
  const cid = 'f'.repeat(64);
  const c = await putRunningContainer(rt, NS, cid, sb);
  rt.tasks.ignore.set(cid, [15]);
  const stopping = stopContainerTask(rt.ctx, NS, c, 30);
  await until(() => rt.clock.pending() === 1, 'the grace timer');
  assert.deepEqual(rt.tasks.signalsOf(NS, cid), [15]);
  rt.clock.advance(29_999);
  assert.deepEqual(rt.tasks.signalsOf(NS, cid), [15], 'no SIGKILL before the grace period ends');
  rt.clock.advance(1);
  await stopping;
  assert.deepEqual(rt.tasks.signalsOf(NS, cid), [15, 9]);
  const after = rt.ctx.containers.get(NS, cid)!;
  assert.equal(after.state, 'exited');
  assert.equal(after.exitCode, 137);
});

test('StopPodSandbox and RemovePodSandbox are idempotent and unknown ids succeed', async (t) => {
  const rt = await newTestContext(t);
  const id = await run(rt, pod({ pause: true }));
  await stop(rt, id);
  const calls = rt.faults.count('cni.del');
  await stop(rt, id);
  assert.equal(rt.faults.count('cni.del'), calls, 'a stopped pod needs no second DEL');
  assert.deepEqual((await status(rt, id)).status!.network!.ip, '', 'no IP once stopped');
  await remove(rt, id);
  await remove(rt, id);
  await stop(rt, 'e'.repeat(64));
  await assertNothingLeft(rt);
});

test('ListPodSandbox keeps its answer only while no sandbox record changes', async (t) => {
  const rt = await newTestContext(t);
  const a = await run(rt, pod({ name: 'a' }));
  const first = await list(rt);
  assert.deepEqual(
    first.map((p) => [p.id, p.state]),
    [[a, PodSandboxState.SANDBOX_READY]],
  );
  assert.deepEqual(await list(rt), first, 'the same answer twice');
  const b = await run(rt, pod({ name: 'b' }));
  assert.deepEqual(
    (await list(rt)).map((p) => p.id),
    [a, b],
    'a new pod is listed',
  );
  await stop(rt, a);
  assert.deepEqual(
    (await list(rt)).map((p) => [p.id, p.state]),
    [
      [a, PodSandboxState.SANDBOX_NOTREADY],
      [b, PodSandboxState.SANDBOX_READY],
    ],
    'a stopped pod turns NOTREADY in the list',
  );
  await remove(rt, a);
  assert.deepEqual(
    (await list(rt)).map((p) => p.id),
    [b],
    'a removed pod is gone from the list',
  );
  // A filter is its own answer.
  const ready = await listPodSandbox(rt.ctx)(
    {
      $typeName: 'runtime.v1.ListPodSandboxRequest',
      filter: {
        $typeName: 'runtime.v1.PodSandboxFilter',
        id: '',
        labelSelector: {},
        state: { $typeName: 'runtime.v1.PodSandboxStateValue', state: PodSandboxState.SANDBOX_NOTREADY },
      },
    },
    call(),
  );
  assert.deepEqual(ready instanceof EncodedResponse ? fromBinary(ListPodSandboxResponseSchema, ready.bytes).items : ready.items, []);
});

test("RemovePodSandbox drops the pod's decoded config that PodSandboxStatus keeps", async (t) => {
  const rt = await newTestContext(t);
  const id = await run(rt, pod({ name: 'cached' }));
  await status(rt, id);
  assert.equal(sandboxConfigKept(id), true, 'kept while the pod exists');
  await stop(rt, id);
  await remove(rt, id);
  assert.equal(sandboxConfigKept(id), false, 'not kept for a removed pod');
});
