/**
 * Behaviours kubelet relies on, observed over the CRI with a real berthd: the Status
 * conditions with and without a CNI config and without runc, a pause that dies while berthd runs making its pod
 * NOTREADY, and a graceful (SIGTERM) restart keeping every pod and container as it was.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { ContainerState, PodSandboxState, NamespaceMode } from '../../src/api/cri/runtime/v1/api_pb.js';
import { startCriEnv, type CriEnv } from '../helpers/cri-env.js';
import { busyboxConfig, createContainer, runPod, waitForState } from '../helpers/cri-container.js';
import { isRoot } from '../helpers/netns.js';
import { existsSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const skip = !isRoot() ? 'needs root' : false;
const envs: CriEnv[] = [];
after(async () => {
  for (const e of envs) await e.cleanup();
});

async function waitUntil(what: string, check: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const condition = async (e: CriEnv, type: string) => (await e.berthd.cri.runtime.status({})).status?.conditions.find((c) => c.type === type);

test('Status: RuntimeReady, and NetworkReady only with a CNI config (reason NetworkPluginNotReady without)', { skip }, async () => {
  const withCni = await startCriEnv();
  envs.push(withCni);
  assert.equal((await condition(withCni, 'RuntimeReady'))?.status, true);
  assert.equal((await condition(withCni, 'NetworkReady'))?.status, true);
  const noCni = await startCriEnv({ noCni: true });
  envs.push(noCni);
  assert.equal((await condition(noCni, 'RuntimeReady'))?.status, true);
  const net = await condition(noCni, 'NetworkReady');
  assert.equal(net?.status, false);
  assert.equal(net?.reason, 'NetworkPluginNotReady');
  assert.match(net?.message ?? '', /cni|network/i);
});

test('Status without runc on PATH: RuntimeReady false (reason RuntimeNotReady, naming runc); NetworkReady unaffected', { skip }, async (t) => {
  // A PATH with every command of the usual one but runc.
  const bin = mkdtempSync(join(tmpdir(), 'berth-norunc-'));
  t.after(() => rmSync(bin, { recursive: true, force: true }));
  for (const dir of ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
    let names: string[] = [];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const n of names) if (n !== 'runc' && !existsSync(join(bin, n))) symlinkSync(join(dir, n), join(bin, n));
  }
  const noRunc = await startCriEnv({ env: { PATH: bin } });
  envs.push(noRunc);
  const rt = await condition(noRunc, 'RuntimeReady');
  assert.equal(rt?.status, false);
  assert.equal(rt?.reason, 'RuntimeNotReady');
  assert.match(rt?.message ?? '', /runc/);
  assert.equal((await condition(noRunc, 'NetworkReady'))?.status, true);
});

test('a pause that dies while berthd runs makes its pod NOTREADY; its containers are still listed', { skip, timeout: 60_000 }, async () => {
  const e = envs[0]!;
  await e.berthd.cri.image.pullImage({ image: { image: e.busybox.ref } });
  // The CRI's default pod shares a pid namespace: berth runs a pause for it.
  const pod = await runPod(e, { linux: { securityContext: { namespaceOptions: { pid: NamespaceMode.POD } } } });
  const id = await createContainer(e, pod, busyboxConfig(e, 'c', ['sleep', '3600']));
  await e.berthd.cri.runtime.startContainer({ containerId: id });
  const s = await e.berthd.cri.runtime.podSandboxStatus({ podSandboxId: pod.id, verbose: true });
  const pausePid = (JSON.parse(s.info.info!) as { pid: number }).pid;
  assert.ok(pausePid > 0, 'the pod has a pause process');
  process.kill(pausePid, 'SIGKILL');
  await waitUntil(
    'pod NOTREADY',
    async () => (await e.berthd.cri.runtime.podSandboxStatus({ podSandboxId: pod.id })).status?.state === PodSandboxState.SANDBOX_NOTREADY,
  );
  const listed = (await e.berthd.cri.runtime.listContainers({ filter: { podSandboxId: pod.id } })).containers;
  assert.deepEqual(
    listed.map((c) => c.id),
    [id],
  );
  await pod.remove();
});

test('a graceful restart (SIGTERM, start again) keeps every pod and container with its id and state', { skip, timeout: 90_000 }, async () => {
  const e = envs[0]!;
  const rt = () => e.berthd.cri.runtime;
  const pod = await runPod(e);
  const running = await createContainer(e, pod, busyboxConfig(e, 'running', ['sleep', '3600']));
  await rt().startContainer({ containerId: running });
  const created = await createContainer(e, pod, busyboxConfig(e, 'created', ['sleep', '3600']));
  const exited = await createContainer(e, pod, busyboxConfig(e, 'exited', ['sh', '-c', 'exit 4']));
  await rt().startContainer({ containerId: exited });
  await waitForState(e, exited, ContainerState.CONTAINER_EXITED);
  const pid = (JSON.parse((await rt().containerStatus({ containerId: running, verbose: true })).info.info!) as { pid: number }).pid;
  assert.equal(await e.berthd.stop(), 0, 'berthd exits 0 on SIGTERM');
  await e.berthd.restart();
  const states = new Map((await rt().listContainers({})).containers.map((c) => [c.id, c.state]));
  assert.equal(states.get(running), ContainerState.CONTAINER_RUNNING);
  assert.equal(states.get(created), ContainerState.CONTAINER_CREATED);
  assert.equal(states.get(exited), ContainerState.CONTAINER_EXITED);
  assert.equal((await rt().containerStatus({ containerId: exited })).status?.exitCode, 4);
  assert.equal((JSON.parse((await rt().containerStatus({ containerId: running, verbose: true })).info.info!) as { pid: number }).pid, pid, 'the same process');
  assert.equal((await rt().podSandboxStatus({ podSandboxId: pod.id })).status?.state, PodSandboxState.SANDBOX_READY);
  await rt().startContainer({ containerId: created });
  await waitForState(e, created, ContainerState.CONTAINER_RUNNING);
  await pod.remove();
});
