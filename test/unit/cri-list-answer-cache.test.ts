// The answer caches of ListPodSandbox and ListContainers (src/cri/server/answer-cache.ts) are
// bounded: a client cycling filters, or sending a label selector of megabytes, cannot make
// berthd hold more than 32 small answers; answers stay right across evictions and store writes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fromBinary } from '@bufbuild/protobuf';
import { ListContainersResponseSchema, ListPodSandboxResponseSchema, type PodSandbox } from '../../src/api/cri/runtime/v1/api_pb.js';
import { containerAnswersHeld, listContainers } from '../../src/cri/container/list.js';
import { listPodSandbox, sandboxAnswersHeld } from '../../src/cri/sandbox/list.js';
import { EncodedResponse } from '../../src/cri/server/grpc.js';
import { SANDBOX_RECORD_VERSION, type SandboxRecord } from '../../src/core/metadata/sandbox-record.js';
import { newTestContext, runningContainerRecord, type TestRuntime } from '../helpers/fakes/context.js';

const NS = 'k8s.io';
const call = () => ({ namespace: NS, signal: new AbortController().signal });

function putPod(rt: TestRuntime, id: string, labels: Record<string, string>): void {
  const rec = {
    version: SANDBOX_RECORD_VERSION,
    id,
    name: `pod-${id}`,
    meta: { name: `pod-${id}`, namespace: 'default', uid: `uid-${id}`, attempt: 0 },
    state: 'ready',
    createdAt: String(1000 + rt.ctx.sandboxes.list(NS).length),
    runtimeHandler: 'runc',
    config: '',
    labels,
    annotations: {},
    netnsPath: '',
    ips: [],
    sandboxDir: '',
    cgroupParent: '',
    hostNetwork: true,
    hostIpc: false,
    pins: {},
    pause: false,
    networkDown: true,
    extra: {},
  } as unknown as SandboxRecord;
  rt.ctx.sandboxes.put(NS, rec);
}

const byLabels = (rt: TestRuntime, labelSelector: Record<string, string>) =>
  listPodSandbox(rt.ctx)(
    { $typeName: 'runtime.v1.ListPodSandboxRequest', filter: { $typeName: 'runtime.v1.PodSandboxFilter', id: '', labelSelector } },
    call(),
  );
const ids = (r: unknown): string[] =>
  (r instanceof EncodedResponse ? fromBinary(ListPodSandboxResponseSchema, r.bytes).items : ((r as { items: PodSandbox[] }).items ?? [])).map((p) => p.id);

test('the answer cache holds at most 32 filters, evicting the least recently used; answers stay right', async (t) => {
  const rt = await newTestContext(t);
  putPod(rt, 'a', { app: 'web' });
  putPod(rt, 'b', { app: 'db' });
  const hot = await byLabels(rt, { app: 'web' });
  assert.deepEqual(ids(hot), ['a']);
  assert.equal(await byLabels(rt, { app: 'web' }), hot, 'a repeated filter is answered from the cache');
  for (let i = 0; i < 100; i++) {
    assert.deepEqual(ids(await byLabels(rt, { n: String(i) })), []);
    // The kubelet's filter, asked in between, stays cached.
    if (i % 10 === 0) assert.equal(await byLabels(rt, { app: 'web' }), hot);
    assert.ok(sandboxAnswersHeld(rt.ctx).entries <= 32, `at most 32 answers kept (${sandboxAnswersHeld(rt.ctx).entries})`);
  }
  assert.deepEqual(ids(await byLabels(rt, { app: 'db' })), ['b']);
  // A write makes every kept answer stale.
  putPod(rt, 'c', { app: 'web' });
  assert.deepEqual(ids(await byLabels(rt, { app: 'web' })), ['a', 'c']);
});

test('a huge label selector is answered but not kept', async (t) => {
  const rt = await newTestContext(t);
  putPod(rt, 'a', { app: 'web' });
  const big = 'x'.repeat(256 * 1024);
  for (let i = 0; i < 8; i++) assert.deepEqual(ids(await byLabels(rt, { app: 'web', [`k${i}`]: big })), []);
  assert.ok(sandboxAnswersHeld(rt.ctx).keyChars < 64 * 1024, `keys held: ${sandboxAnswersHeld(rt.ctx).keyChars} chars`);
  assert.deepEqual(ids(await byLabels(rt, { app: 'web' })), ['a']);
});

function putContainer(rt: TestRuntime, id: string, labels: Record<string, string>): void {
  rt.ctx.containers.put(NS, runningContainerRecord(id, 'p', { name: `k8s_${id}`, meta: { name: id, attempt: 0 }, labels }));
}

test('ListContainers: at most 32 answers kept, huge selectors not kept, answers stay right', async (t) => {
  const rt = await newTestContext(t);
  // The image service's answers key: without one ListContainers keeps nothing.
  (rt.ctx.images as { answersKey?: () => string }).answersKey = () => 'images-1';
  putContainer(rt, 'c1', { app: 'web' });
  const ask = (labelSelector: Record<string, string>) =>
    listContainers(rt.ctx)(
      { $typeName: 'runtime.v1.ListContainersRequest', filter: { $typeName: 'runtime.v1.ContainerFilter', id: '', podSandboxId: '', labelSelector } },
      call(),
    );
  const cids = (r: unknown) => (r instanceof EncodedResponse ? fromBinary(ListContainersResponseSchema, r.bytes).containers : []).map((c) => c.id);
  const hot = await ask({ app: 'web' });
  assert.deepEqual(cids(hot), ['c1']);
  assert.equal(await ask({ app: 'web' }), hot, 'kept');
  for (let i = 0; i < 100; i++) {
    await ask({ n: String(i) });
    if (i % 10 === 0) assert.equal(await ask({ app: 'web' }), hot);
  }
  assert.ok(containerAnswersHeld(rt.ctx).entries <= 32, `${containerAnswersHeld(rt.ctx).entries} answers kept`);
  const big = 'y'.repeat(256 * 1024);
  for (let i = 0; i < 8; i++) assert.deepEqual(cids(await ask({ [`k${i}`]: big })), []);
  assert.ok(containerAnswersHeld(rt.ctx).keyChars < 64 * 1024, `keys held: ${containerAnswersHeld(rt.ctx).keyChars} chars`);
  putContainer(rt, 'c2', { app: 'web' });
  assert.deepEqual(cids(await ask({ app: 'web' })).sort(), ['c1', 'c2']);
});
