/**
 * berthd with `[shim] group = "node"`: every pod's containers live in one berth-shim process.
 * Two pods share that shim; removing one pod leaves the other running; after kill -9 of
 * berthd and a restart, berthd reconnects to the shared shim and the remaining pod is still
 * running and can be stopped and removed; with nothing left the shim exits.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { ContainerState, PodSandboxState } from '../../src/api/cri/runtime/v1/api_pb.js';
import { startCriEnv, type CriEnv } from '../helpers/cri-env.js';
import { busyboxConfig, createContainer, runPod, waitForState, type TestPod } from '../helpers/cri-container.js';
import { isRoot } from '../helpers/netns.js';
import { alive } from '../helpers/process.js';

const skip = !isRoot() ? 'needs root' : false;
let env: CriEnv | undefined;
after(async () => {
  await env?.cleanup();
});

async function containerPid(e: CriEnv, id: string): Promise<number> {
  const s = await e.berthd.cri.runtime.containerStatus({ containerId: id, verbose: true });
  return (JSON.parse(s.info.info!) as { pid: number }).pid;
}

function ppid(pid: number): number {
  return Number(/^PPid:\s*(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
}


async function waitUntil(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function runSleeper(e: CriEnv, pod: TestPod, name: string): Promise<string> {
  const id = await createContainer(e, pod, busyboxConfig(e, name, ['sh', '-c', 'trap "exit 0" TERM; sleep 3600 & wait']));
  await e.berthd.cri.runtime.startContainer({ containerId: id });
  await waitForState(e, id, ContainerState.CONTAINER_RUNNING);
  return id;
}

test('one shim per node: pods share it, survive each other and a berthd crash', { skip, timeout: 120_000 }, async () => {
  env = await startCriEnv({ extraToml: '[shim]\ngroup = "node"\n' });
  const e = env;
  // A getter: restart() replaces the CRI client.
  const rt = (): CriEnv['berthd']['cri']['runtime'] => e.berthd.cri.runtime;
  await e.berthd.cri.image.pullImage({ image: { image: e.busybox.ref } });

  const podA = await runPod(e);
  const podB = await runPod(e);
  const a = await runSleeper(e, podA, 'a');
  const b = await runSleeper(e, podB, 'b');
  const pidA = await containerPid(e, a);
  const pidB = await containerPid(e, b);
  const shim = ppid(pidA);
  assert.equal(ppid(pidB), shim, 'both pods’ containers are children of the same shim');
  assert.match(readFileSync(`/proc/${shim}/cmdline`, 'utf8'), /berth-shim|containerd-shim-berth-v1/);

  // Removing pod A stops and deletes its container; pod B and the shared shim keep running.
  await podA.remove();
  await waitUntil('pod A container gone', () => !alive(pidA));
  assert.ok(alive(shim), 'the shared shim outlives pod A');
  assert.ok(alive(pidB), 'pod B’s container keeps running');
  assert.equal((await rt().containerStatus({ containerId: b })).status?.state, ContainerState.CONTAINER_RUNNING);

  // berthd crashes; the shim and pod B do not notice. The new berthd reconnects to the shim.
  await e.berthd.kill9();
  assert.ok(alive(shim) && alive(pidB));
  await e.berthd.restart();
  const pods = new Map((await rt().listPodSandbox({})).items.map((p) => [p.id, p.state]));
  assert.equal(pods.get(podB.id), PodSandboxState.SANDBOX_READY);
  assert.equal(pods.has(podA.id), false);
  const st = await rt().containerStatus({ containerId: b, verbose: true });
  assert.equal(st.status?.state, ContainerState.CONTAINER_RUNNING);
  assert.equal((JSON.parse(st.info.info!) as { pid: number }).pid, pidB);

  // Stop through the reconnected shim: SIGTERM reaches the container, the exit is reported.
  await rt().stopContainer({ containerId: b, timeout: 10n });
  const exited = await waitForState(e, b, ContainerState.CONTAINER_EXITED);
  assert.equal(exited.exitCode, 0);
  await podB.remove();
  assert.equal((await rt().listPodSandbox({})).items.length, 0);
  // Nothing left in it: the node shim shuts down.
  await waitUntil('node shim exit', () => !alive(shim), 15_000);
});
