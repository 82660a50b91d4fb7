/**
 * Container RPCs end to end: real berthd, berth-shim, runc, CNI and registry.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { status as grpcStatus } from '@grpc/grpc-js';
import { ContainerState, Signal } from '../../src/api/cri/runtime/v1/api_pb.js';
import { startCriEnv, type CriEnv } from '../helpers/cri-env.js';
import { until } from '../helpers/process.js';
import { buildImage, buildLayer, fixture, pushFixture, type FixtureManifest } from '../helpers/images.js';
import { busyboxConfig, createContainer, logText, runPod, runToExit, status, waitForState, type TestPod } from '../helpers/cri-container.js';
import { hostHierarchy, memoryLimitInside, readKnobOfPid } from '../helpers/cgroup.js';

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

test('a container writes stdout and stderr to its CRI log and exits Completed', async () => {
  const { id, status: s, log } = await runToExit(env, pod, busyboxConfig(env, 'hello', ['sh', '-c', 'echo hello; echo err >&2']));
  assert.equal(s.exitCode, 0);
  assert.equal(s.reason, 'Completed');
  assert.ok(s.startedAt > 0n && s.finishedAt >= s.startedAt && s.startedAt >= s.createdAt);
  assert.equal(s.logPath, join(pod.logDir, 'hello.log'));
  // stdout and stderr are separate pipes: their relative order is not defined.
  assert.deepEqual(log.map((l) => `${l.stream} ${l.tag} ${l.msg}`).sort(), ['stderr F err', 'stdout F hello']);
  await env.berthd.cri.runtime.removeContainer({ containerId: id });
});

test('a non-zero exit is reported with its code and reason Error', async () => {
  const { id, status: s } = await runToExit(env, pod, busyboxConfig(env, 'fail', ['sh', '-c', 'exit 3']));
  assert.equal(s.exitCode, 3);
  assert.equal(s.reason, 'Error');
  await env.berthd.cri.runtime.removeContainer({ containerId: id });
});

test('list filters by state, sandbox, id prefix and labels; status reports image and metadata', async () => {
  const id = await createContainer(env, pod, busyboxConfig(env, 'lister', ['sleep', '60'], { labels: { app: 'x', tier: 'y' } }));
  try {
    const rt = env.berthd.cri.runtime;
    let s = await status(env, id);
    assert.equal(s.state, ContainerState.CONTAINER_CREATED);
    assert.equal(s.metadata?.name, 'lister');
    assert.match(s.imageRef, /^(sha256:[0-9a-f]{64}|.+@sha256:[0-9a-f]{64})$/);
    await rt.startContainer({ containerId: id });
    s = await status(env, id);
    assert.equal(s.state, ContainerState.CONTAINER_RUNNING);
    const ids = async (filter: object): Promise<string[]> => (await rt.listContainers({ filter })).containers.map((c) => c.id);
    assert.ok((await ids({})).includes(id));
    assert.deepEqual(await ids({ id: id.slice(0, 12) }), [id]);
    assert.ok((await ids({ podSandboxId: pod.id })).includes(id));
    assert.deepEqual(await ids({ podSandboxId: 'f'.repeat(64) }), []);
    assert.ok((await ids({ state: { state: ContainerState.CONTAINER_RUNNING } })).includes(id));
    assert.ok(!(await ids({ state: { state: ContainerState.CONTAINER_EXITED } })).includes(id));
    assert.deepEqual(await ids({ labelSelector: { app: 'x', tier: 'y' } }), [id]);
    assert.deepEqual(await ids({ labelSelector: { app: 'other' } }), []);
    const verbose = await rt.containerStatus({ containerId: id, verbose: true });
    const info = JSON.parse(verbose.info.info!) as { pid: number; sandboxID: string; runtimeSpec: { process: { args: string[] } } };
    assert.equal(info.sandboxID, pod.id);
    assert.ok(info.pid > 0);
    assert.deepEqual(info.runtimeSpec.process.args, ['sleep', '60']);
    // The bundle is root-only: a local user cannot reach the image's files (setuid binaries
    // of a hostile image) through <bundle>/rootfs (CVE-2021-41103).
    const bundle = join(env.berthd.state, 'tasks', 'k8s.io', id);
    assert.equal(statSync(bundle).mode & 0o777, 0o700);
    const probe = spawnSync('runuser', ['-u', 'nobody', '--', 'ls', join(bundle, 'rootfs', 'bin')], { encoding: 'utf8' });
    assert.notEqual(probe.status, 0);
    assert.match(probe.stderr, /Permission denied/);
    // PodSandboxStatus carries the statuses of the pod's containers (CRI containers_statuses).
    const podStatus = await rt.podSandboxStatus({ podSandboxId: pod.id });
    const mine = podStatus.containersStatuses.find((c) => c.id === id);
    assert.equal(mine?.state, ContainerState.CONTAINER_RUNNING);
    assert.equal(mine?.metadata?.name, 'lister');
    assert.ok(podStatus.containersStatuses.every((c) => c.id !== '' && c.metadata !== undefined));
    assert.ok(podStatus.timestamp > 0n);
    // A second container with the same name is refused while the first exists.
    await assert.rejects(createContainer(env, pod, busyboxConfig(env, 'lister', ['true'])), (e: { code: number }) => e.code === grpcStatus.ALREADY_EXISTS);
  } finally {
    await env.berthd.cri.runtime.removeContainer({ containerId: id });
  }
  // Removal released the name.
  const again = await createContainer(env, pod, busyboxConfig(env, 'lister', ['true']));
  await env.berthd.cri.runtime.removeContainer({ containerId: again });
});

test('StopContainer escalates to SIGKILL when the process ignores SIGTERM', async () => {
  // The shell notes SIGTERM and carries on: SIGKILL must follow when the timeout runs out.
  const id = await createContainer(
    env,
    pod,
    busyboxConfig(env, 'stubborn', ['sh', '-c', "trap 'echo got-term' TERM; echo ready; while :; do sleep 0.1; done"]),
  );
  try {
    await env.berthd.cri.runtime.startContainer({ containerId: id });
    await waitForState(env, id, ContainerState.CONTAINER_RUNNING);
    await waitFor(() => logText(join(pod.logDir, 'stubborn.log')).includes('ready'));
    await env.berthd.cri.runtime.stopContainer({ containerId: id, timeout: 1n });
    const s = await status(env, id);
    assert.equal(s.state, ContainerState.CONTAINER_EXITED);
    assert.equal(s.exitCode, 137, 'killed by SIGKILL');
    assert.match(logText(join(pod.logDir, 'stubborn.log')), /got-term/, 'SIGTERM came first and was survived');
    // Stop again, and stop after exit: both succeed.
    await env.berthd.cri.runtime.stopContainer({ containerId: id, timeout: 1n });
  } finally {
    await env.berthd.cri.runtime.removeContainer({ containerId: id });
  }
});

test('StopContainer with SIGTERM handled exits promptly with the handler exit code', async () => {
  const id = await createContainer(env, pod, busyboxConfig(env, 'polite', ['sh', '-c', "trap 'exit 7' TERM; echo ready; while :; do sleep 0.1; done"]));
  try {
    await env.berthd.cri.runtime.startContainer({ containerId: id });
    await waitFor(() => logText(join(pod.logDir, 'polite.log')).includes('ready'));
    await env.berthd.cri.runtime.stopContainer({ containerId: id, timeout: 10n });
    const s = await status(env, id);
    assert.equal(s.exitCode, 7);
    assert.equal(s.reason, 'Error');
  } finally {
    await env.berthd.cri.runtime.removeContainer({ containerId: id });
  }
});

test('StopContainer sends the configured stop_signal', async () => {
  const id = await createContainer(
    env,
    pod,
    busyboxConfig(env, 'usr1', ['sh', '-c', "trap 'exit 5' USR1; trap '' TERM; echo ready; while :; do sleep 0.1; done"], { stopSignal: Signal.SIGUSR1 }),
  );
  try {
    await env.berthd.cri.runtime.startContainer({ containerId: id });
    await waitFor(() => logText(join(pod.logDir, 'usr1.log')).includes('ready'));
    await env.berthd.cri.runtime.stopContainer({ containerId: id, timeout: 10n });
    assert.equal((await status(env, id)).exitCode, 5);
  } finally {
    await env.berthd.cri.runtime.removeContainer({ containerId: id });
  }
});

test('RemoveContainer kills a running container, removes its rootfs and is idempotent', async () => {
  const id = await createContainer(env, pod, busyboxConfig(env, 'removed', ['sleep', '300']));
  await env.berthd.cri.runtime.startContainer({ containerId: id });
  await waitForState(env, id, ContainerState.CONTAINER_RUNNING);
  await env.berthd.cri.runtime.removeContainer({ containerId: id });
  await env.berthd.cri.runtime.removeContainer({ containerId: id });
  await env.berthd.cri.runtime.stopContainer({ containerId: id, timeout: 0n });
  await assert.rejects(status(env, id), (e: { code: number; details: string }) => e.code === grpcStatus.NOT_FOUND && e.details.includes(id));
  // The bundle and rootfs go right after the reply (the record is gone at once).
  await until(() => !existsSync(join(env.berthd.state, 'tasks', 'k8s.io', id)), 'bundle removed');
  const list = await env.berthd.cri.runtime.listContainers({});
  assert.ok(!list.containers.some((c) => c.id === id));
});

test(`UpdateContainerResources changes the memory limit of the container cgroup (${hostHierarchy() === 'v1' ? 'memory.limit_in_bytes' : 'memory.max'}), inside and on the host`, async () => {
  const id = await createContainer(
    env,
    pod,
    busyboxConfig(env, 'resized', ['sh', '-c', `while :; do ${memoryLimitInside()}; sleep 0.2; done`], {
      linux: { resources: { memoryLimitInBytes: 64n * 1024n * 1024n } },
    }),
  );
  try {
    await env.berthd.cri.runtime.startContainer({ containerId: id });
    const log = join(pod.logDir, 'resized.log');
    await waitFor(() => logText(log).includes(String(64 * 1024 * 1024)));
    const pid = (JSON.parse((await env.berthd.cri.runtime.containerStatus({ containerId: id, verbose: true })).info.info!) as { pid: number }).pid;
    assert.equal(readKnobOfPid(pid, 'memoryLimit'), 64n * 1024n * 1024n, "the host's view of the container cgroup");
    await env.berthd.cri.runtime.updateContainerResources({ containerId: id, linux: { memoryLimitInBytes: 96n * 1024n * 1024n } });
    await waitFor(() => logText(log).includes(String(96 * 1024 * 1024)));
    assert.equal(readKnobOfPid(pid, 'memoryLimit'), 96n * 1024n * 1024n, "the host's view of the container cgroup");
    const s = await status(env, id);
    assert.equal(s.resources?.linux?.memoryLimitInBytes, 96n * 1024n * 1024n);
  } finally {
    await env.berthd.cri.runtime.removeContainer({ containerId: id });
  }
});

test('a container over its memory limit is OOM killed and reported OOMKilled', async () => {
  const { id, status: s } = await runToExit(
    env,
    pod,
    busyboxConfig(env, 'oom', ['sh', '-c', 'x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo survived'], {
      linux: { resources: { memoryLimitInBytes: 32n * 1024n * 1024n } },
    }),
    60_000,
  );
  try {
    assert.equal(s.reason, 'OOMKilled', `exit ${s.exitCode}, log: ${readFileSync(s.logPath, 'utf8')}`);
    assert.ok(!logText(s.logPath).includes('survived'));
  } finally {
    await env.berthd.cri.runtime.removeContainer({ containerId: id });
  }
});

test('bad input answers INVALID_ARGUMENT / NOT_FOUND naming what is wrong and leaves nothing behind', async () => {
  const rt = env.berthd.cri.runtime;
  const before = (await rt.listContainers({})).containers.length;
  const is = (code: number, text: RegExp) => (e: { code: number; details: string }) => e.code === code && text.test(e.details);
  await assert.rejects(
    rt.createContainer({ podSandboxId: pod.id, config: { image: { image: env.busybox.ref } } }),
    is(grpcStatus.INVALID_ARGUMENT, /metadata\.name/),
  );
  await assert.rejects(rt.createContainer({ podSandboxId: pod.id }), is(grpcStatus.INVALID_ARGUMENT, /config/));
  await assert.rejects(rt.createContainer({ podSandboxId: pod.id, config: { metadata: { name: 'x' } } }), is(grpcStatus.INVALID_ARGUMENT, /image/));
  await assert.rejects(rt.createContainer({ podSandboxId: 'a'.repeat(64), config: busyboxConfig(env, 'x', ['true']) }), is(grpcStatus.NOT_FOUND, /a{64}/));
  await assert.rejects(rt.createContainer({ podSandboxId: '', config: busyboxConfig(env, 'x', ['true']) }), is(grpcStatus.INVALID_ARGUMENT, /pod_sandbox_id/));
  await assert.rejects(
    rt.createContainer({ podSandboxId: pod.id, config: busyboxConfig(env, 'x', ['true'], { image: { image: 'example.invalid/none:1' } }) }),
    is(grpcStatus.NOT_FOUND, /example\.invalid\/none:1/),
  );
  await assert.rejects(rt.startContainer({ containerId: 'b'.repeat(64) }), is(grpcStatus.NOT_FOUND, /b{64}/));
  await assert.rejects(rt.containerStatus({ containerId: '' }), is(grpcStatus.INVALID_ARGUMENT, /container_id/));
  await assert.rejects(rt.updateContainerResources({ containerId: 'c'.repeat(64), linux: {} }), is(grpcStatus.NOT_FOUND, /c{64}/));
  // Failed creates left no container and no name: the same name still works.
  assert.equal((await rt.listContainers({})).containers.length, before);
  const id = await createContainer(env, pod, busyboxConfig(env, 'x', ['true']));
  await rt.removeContainer({ containerId: id });
});

async function waitFor(cond: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('a create that fails in the runtime leaves no container, name or snapshot behind', async () => {
  const rt = env.berthd.cri.runtime;
  const snapshotsBefore = snapshotDirs();
  await assert.rejects(createContainer(env, pod, busyboxConfig(env, 'broken', ['/does/not/exist'])));
  assert.ok(!(await rt.listContainers({})).containers.some((c) => c.metadata?.name === 'broken'));
  // No new snapshot (earlier tests' removed containers may still be leaving: only fewer).
  const now = snapshotDirs();
  assert.deepEqual(
    now.filter((d) => !snapshotsBefore.includes(d)),
    [],
    'no snapshot left by the failed create',
  );
  const id = await createContainer(env, pod, busyboxConfig(env, 'broken', ['true']));
  await rt.removeContainer({ containerId: id });
});

test('devices from the config appear in the container', async () => {
  const {
    id,
    status: s,
    log,
  } = await runToExit(
    env,
    pod,
    busyboxConfig(env, 'dev', ['sh', '-c', 'ls -l /dev/mynull | cut -c1; echo x > /dev/mynull && echo wrote'], {
      devices: [{ hostPath: '/dev/null', containerPath: '/dev/mynull', permissions: 'rwm' }],
    }),
  );
  await env.berthd.cri.runtime.removeContainer({ containerId: id });
  assert.equal(s.exitCode, 0);
  assert.deepEqual(
    log.map((l) => l.msg),
    ['c', 'wrote'],
  );
});

test('a tty container runs on a terminal and its output reaches the log', async () => {
  const { id, status: s, log } = await runToExit(env, pod, busyboxConfig(env, 'tty', ['sh', '-c', 'tty'], { tty: true, stdin: true }));
  await env.berthd.cri.runtime.removeContainer({ containerId: id });
  assert.equal(s.exitCode, 0);
  assert.match(log.map((l) => l.msg).join(''), /\/dev\/pts\/\d+/);
});

test('StartContainer in a pod that is not ready fails with FAILED_PRECONDITION', async () => {
  const other = await runPod(env);
  try {
    const id = await createContainer(env, other, busyboxConfig(env, 'late', ['true']));
    await env.berthd.cri.runtime.stopPodSandbox({ podSandboxId: other.id });
    await assert.rejects(env.berthd.cri.runtime.startContainer({ containerId: id }), (e: { code: number }) => e.code === grpcStatus.FAILED_PRECONDITION);
  } finally {
    await other.remove();
  }
});

/** Snapshot directories on disk (overlay or native), to check nothing was left behind. */
function snapshotDirs(): string[] {
  const out: string[] = [];
  for (const driver of ['overlayfs', 'native']) {
    const d = join(env.berthd.root, 'snapshots', driver, 'snapshots');
    if (existsSync(d)) out.push(...readdirSync(d).map((n) => join(driver, n)));
  }
  return out.sort();
}

test('image volumes get a fresh directory seeded with the image content, shared by nothing else', async () => {
  const bb = (await fixture('busybox')) as FixtureManifest;
  const extra = await buildLayer(
    [
      { type: 'dir', path: 'data/' },
      { type: 'file', path: 'data/seed.txt', content: 'from-image\n', uid: 1002, gid: 1002 },
    ],
    { compression: 'gzip' },
    `volume-seed-${process.pid}`,
  );
  const img = buildImage([...bb.layers, extra], { config: { Cmd: ['sh'], Env: ['PATH=/bin'], Volumes: ['/data'] } });
  const pushed = await pushFixture(env.registry.url, 'withvolume', 'latest', img);
  await env.berthd.cri.image.pullImage({ image: { image: pushed.ref } });
  const cfg = (name: string, script: string) => busyboxConfig(env, name, ['sh', '-c', script], { image: { image: pushed.ref } });
  const first = await runToExit(env, pod, cfg('vol1', 'cat /data/seed.txt; stat -c %u /data/seed.txt; echo changed > /data/seed.txt'));
  const second = await runToExit(env, pod, cfg('vol2', 'cat /data/seed.txt'));
  for (const c of [first, second]) await env.berthd.cri.runtime.removeContainer({ containerId: c.id });
  assert.deepEqual(
    first.log.map((l) => l.msg),
    ['from-image', '1002'],
  );
  // Each container has its own volume: the second sees the image content, not the first's write.
  assert.deepEqual(
    second.log.map((l) => l.msg),
    ['from-image'],
  );
  await until(() => !existsSync(join(env.berthd.root, 'containers', first.id)), 'volume dir removed with the container');
});
