/** GetContainerEvents: every subscriber sees every lifecycle event, with pod and container statuses. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ContainerEventType, ContainerState, PodSandboxState, type ContainerEventResponse } from '../../src/api/cri/runtime/v1/api_pb.js';
import { startCriEnv, type CriEnv } from '../helpers/cri-env.js';
import { busyboxConfig, createContainer, runPod, waitForState, type TestPod } from '../helpers/cri-container.js';

let env: CriEnv;
let pod: TestPod;

before(async () => {
  env = await startCriEnv();
  await env.berthd.cri.image.pullImage({ image: { image: env.busybox.ref } });
  pod = await runPod(env);
});

after(async () => {
  await pod?.remove();
  await env?.cleanup();
});

/** Subscribe and collect events of one container until `until` kinds were seen. */
function subscribe(): {
  events: ContainerEventResponse[];
  /** The server sent the stream's headers: it is subscribed, every later event reaches us. */
  opened: Promise<void>;
  done: (id: string, n: number) => Promise<ContainerEventResponse[]>;
  cancel(): void;
} {
  const stream = env.berthd.cri.runtime.getContainerEvents({});
  const events: ContainerEventResponse[] = [];
  const pump = (async () => {
    try {
      for await (const e of stream) events.push(e);
    } catch {
      /* cancelled */
    }
  })();
  return {
    events,
    opened: stream.opened,
    async done(id, n) {
      const end = Date.now() + 20_000;
      while (events.filter((e) => e.containerId === id).length < n && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
      return events.filter((e) => e.containerId === id);
    },
    cancel() {
      stream.cancel();
      void pump;
    },
  };
}

test('two subscribers both receive CREATED, STARTED, STOPPED and DELETED with statuses', async () => {
  const a = subscribe();
  const b = subscribe();
  try {
    // Both streams are subscribed once berthd sent their headers: the first event after that
    // must reach both, with no probe container and no sleep.
    await Promise.all([a.opened, b.opened]);
    const id = await createContainer(env, pod, busyboxConfig(env, 'evented', ['sleep', '1000']));
    await env.berthd.cri.runtime.startContainer({ containerId: id });
    await waitForState(env, id, ContainerState.CONTAINER_RUNNING);
    await env.berthd.cri.runtime.stopContainer({ containerId: id, timeout: 0n });
    await env.berthd.cri.runtime.removeContainer({ containerId: id });
    const want = [
      ContainerEventType.CONTAINER_CREATED_EVENT,
      ContainerEventType.CONTAINER_STARTED_EVENT,
      ContainerEventType.CONTAINER_STOPPED_EVENT,
      ContainerEventType.CONTAINER_DELETED_EVENT,
    ];
    for (const sub of [a, b]) {
      const got = await sub.done(id, 4);
      assert.deepEqual(
        got.map((e) => ContainerEventType[e.containerEventType]),
        want.map((k) => ContainerEventType[k]),
      );
      for (const e of got) {
        assert.ok(e.createdAt > 0n);
        assert.equal(e.podSandboxStatus?.id, pod.id);
        assert.equal(e.podSandboxStatus?.state, PodSandboxState.SANDBOX_READY);
      }
      const created = got[0]!.containersStatuses.find((s) => s.id === id);
      assert.ok(created, 'the container status is part of its CREATED event');
      assert.equal(got[1]!.containersStatuses.find((s) => s.id === id)?.state, ContainerState.CONTAINER_RUNNING);
      assert.equal(
        got[3]!.containersStatuses.find((s) => s.id === id),
        undefined,
        'a deleted container has no status',
      );
    }
  } finally {
    a.cancel();
    b.cancel();
  }
});

test('a container that exits by itself while berthd runs: STOPPED event, EXITED status, exit code and finish time over CRI', async () => {
  const s = subscribe();
  try {
    await s.opened;
    const id = await createContainer(env, pod, busyboxConfig(env, 'self-exit', ['sh', '-c', 'exit 7']));
    const startedNs = BigInt(Date.now()) * 1_000_000n;
    await env.berthd.cri.runtime.startContainer({ containerId: id });
    // No StopContainer: only the container's own exit can produce this event.
    const got = await s.done(id, 3);
    assert.deepEqual(
      got.map((e) => ContainerEventType[e.containerEventType]),
      ['CONTAINER_CREATED_EVENT', 'CONTAINER_STARTED_EVENT', 'CONTAINER_STOPPED_EVENT'],
    );
    const inEvent = got[2]!.containersStatuses.find((c) => c.id === id);
    assert.equal(inEvent?.state, ContainerState.CONTAINER_EXITED, 'the STOPPED event carries the exited status');
    assert.equal(inEvent?.exitCode, 7);
    const st = (await env.berthd.cri.runtime.containerStatus({ containerId: id })).status!;
    assert.equal(st.state, ContainerState.CONTAINER_EXITED);
    assert.equal(st.exitCode, 7);
    assert.equal(st.reason, 'Error', 'a non-zero exit is reported as Error');
    assert.ok(st.startedAt > 0n && st.finishedAt >= st.startedAt, `finished ${st.finishedAt} after started ${st.startedAt}`);
    assert.ok(st.finishedAt >= startedNs - 5_000_000_000n, 'the finish time is of this run');
    await env.berthd.cri.runtime.removeContainer({ containerId: id });
  } finally {
    s.cancel();
  }
});
