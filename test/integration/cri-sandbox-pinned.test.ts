/**
 * Pinned pod namespaces: a kubelet-style pod (pid CONTAINER) runs with no pause process, its
 * containers share the pinned network, IPC and UTS namespaces (not the host's), its sysctls
 * and hostname are set; a pod sharing its pid namespace still has a pause whose processes
 * its containers see; stop/remove leave no pin mount or file behind.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { ContainerState, NamespaceMode, PodSandboxState } from '../../src/api/cri/runtime/v1/api_pb.js';
import { startCriEnv, type CriEnv } from '../helpers/cri-env.js';
import { busyboxConfig, createContainer, runPod, status, waitForState, type TestPod } from '../helpers/cri-container.js';
import { isRoot, run } from '../helpers/netns.js';

const skip = !isRoot() ? 'needs root' : false;
let env: CriEnv;
before(async () => {
  if (skip) return;
  env = await startCriEnv();
  await env.berthd.cri.image.pullImage({ image: { image: env.busybox.ref } });
});
after(async () => {
  await env?.cleanup();
});

interface Info {
  pid: number;
  pause: boolean;
  pinnedNamespaces: Record<string, string>;
  netNamespace: string;
}

async function info(id: string): Promise<Info> {
  const s = await env.berthd.cri.runtime.podSandboxStatus({ podSandboxId: id, verbose: true });
  return JSON.parse(s.info.info!) as Info;
}

async function execOut(id: string, cmd: string[]): Promise<string> {
  const r = await env.berthd.cri.runtime.execSync({ containerId: id, cmd, timeout: 10n });
  assert.equal(r.exitCode, 0, Buffer.from(r.stderr).toString());
  return Buffer.from(r.stdout).toString().trim();
}

type NsOpts = { pid?: NamespaceMode; network?: NamespaceMode; ipc?: NamespaceMode };

/** A running busybox sleeper; namespace options as the kubelet sends them (the pod's). */
async function startSleeper(pod: TestPod, name: string, seconds: number, pid: NamespaceMode, more: NsOpts = {}): Promise<{ id: string; pid: number }> {
  const id = await createContainer(
    env,
    pod,
    busyboxConfig(env, name, ['sleep', String(seconds)], { linux: { securityContext: { namespaceOptions: { ...more, pid } } } }),
  );
  await env.berthd.cri.runtime.startContainer({ containerId: id });
  await waitForState(env, id, ContainerState.CONTAINER_RUNNING);
  const v = await env.berthd.cri.runtime.containerStatus({ containerId: id, verbose: true });
  return { id, pid: (JSON.parse(v.info.info!) as { pid: number }).pid };
}

const nsOf = (pid: number | 'self', kind: string): string => readlinkSync(`/proc/${pid}/ns/${kind}`);
const pinMounts = (dir: string): string[] =>
  readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l.includes(dir));

test('a kubelet-style pod runs without a pause; its containers share the pinned net, ipc and uts namespaces', { skip }, async () => {
  const pod = await runPod(env, {
    linux: {
      securityContext: { namespaceOptions: { pid: NamespaceMode.CONTAINER } },
      sysctls: { 'net.ipv4.ip_unprivileged_port_start': '77', 'kernel.shm_rmid_forced': '1' },
    },
  });
  const netnsDir = join(env.berthd.state, 'netns');
  try {
    const i = await info(pod.id);
    assert.equal(i.pid, 0, 'no pause process');
    assert.equal(i.pause, false);
    assert.deepEqual(Object.keys(i.pinnedNamespaces).sort(), ['ipc', 'net', 'uts']);
    assert.equal(i.netNamespace, i.pinnedNamespaces.net);
    assert.ok(!existsSync(join(env.berthd.state, 'tasks', 'k8s.io', pod.id)), 'no pause task bundle');

    const a = await startSleeper(pod, 'a', 3600, NamespaceMode.CONTAINER);
    const b = await startSleeper(pod, 'b', 3601, NamespaceMode.CONTAINER);
    for (const kind of ['net', 'ipc', 'uts']) {
      assert.equal(nsOf(a.pid, kind), nsOf(b.pid, kind), `${kind} shared`);
      assert.notEqual(nsOf(a.pid, kind), nsOf('self', kind), `${kind} is not the host's`);
      // The pinned handle is the very namespace the containers are in.
      const pinIno = run('stat', ['-L', '-c', '%i', i.pinnedNamespaces[kind]!]).stdout.trim();
      assert.equal(nsOf(a.pid, kind), `${kind}:[${pinIno}]`);
    }
    assert.notEqual(nsOf(a.pid, 'pid'), nsOf(b.pid, 'pid'), 'pid CONTAINER: private pid namespaces');

    assert.equal(await execOut(a.id, ['hostname']), pod.config.hostname);
    assert.equal(await execOut(b.id, ['hostname']), pod.config.hostname);
    const ip = (await env.berthd.cri.runtime.podSandboxStatus({ podSandboxId: pod.id })).status!.network!.ip;
    assert.match(await execOut(b.id, ['ip', '-4', 'addr', 'show', 'eth0']), new RegExp(`inet ${ip.replace(/\./g, '\\.')}/`));
    assert.match(await execOut(a.id, ['ip', 'link', 'show', 'lo']), /UP/);
    assert.equal(await execOut(a.id, ['cat', '/proc/sys/net/ipv4/ip_unprivileged_port_start']), '77');
    assert.equal(await execOut(b.id, ['cat', '/proc/sys/kernel/shm_rmid_forced']), '1');

    // Stats still see the pod network without a pause.
    const st = await env.berthd.cri.runtime.podSandboxStats({ podSandboxId: pod.id });
    assert.equal(st.stats?.linux?.network?.defaultInterface?.name, 'eth0');

    await env.berthd.cri.runtime.stopPodSandbox({ podSandboxId: pod.id });
    assert.equal((await status(env, a.id)).state, ContainerState.CONTAINER_EXITED);
    const s = await env.berthd.cri.runtime.podSandboxStatus({ podSandboxId: pod.id });
    assert.equal(s.status?.state, PodSandboxState.SANDBOX_NOTREADY);
    assert.deepEqual(readdirSync(netnsDir), [], 'no pin files after stop');
    assert.deepEqual(pinMounts(join(netnsDir, pod.id)), [], 'no pin mounts after stop');
  } finally {
    await pod.remove();
  }
  assert.deepEqual(readdirSync(netnsDir), []);
  assert.deepEqual(pinMounts(join(netnsDir, pod.id)), []);
});

test('stats of a pod without pause or running containers read the pinned netns', { skip }, async () => {
  const pod = await runPod(env, { linux: { securityContext: { namespaceOptions: { pid: NamespaceMode.CONTAINER } } } });
  try {
    const st = await env.berthd.cri.runtime.podSandboxStats({ podSandboxId: pod.id });
    assert.equal(st.stats?.linux?.network?.defaultInterface?.name, 'eth0');
  } finally {
    await pod.remove();
  }
});

test('a pod sharing its pid namespace has a pause; its containers see each other', { skip }, async () => {
  const pod = await runPod(env, { linux: { securityContext: { namespaceOptions: { pid: NamespaceMode.POD } } } });
  try {
    const i = await info(pod.id);
    assert.ok(i.pid > 0, 'pause runs');
    assert.equal(i.pause, true);
    // The pause joined the pinned namespaces.
    const pinIno = run('stat', ['-L', '-c', '%i', i.pinnedNamespaces.net!]).stdout.trim();
    assert.equal(nsOf(i.pid, 'net'), `net:[${pinIno}]`);
    const a = await startSleeper(pod, 'pa', 1234, NamespaceMode.POD);
    const b = await startSleeper(pod, 'pb', 4321, NamespaceMode.POD);
    assert.equal(nsOf(a.pid, 'pid'), nsOf(i.pid, 'pid'));
    assert.equal(nsOf(b.pid, 'uts'), nsOf(i.pid, 'uts'));
    const ps = await execOut(b.id, ['ps', '-o', 'args']);
    assert.match(ps, /sleep 1234/);
    assert.equal(await execOut(a.id, ['hostname']), pod.config.hostname);
  } finally {
    await pod.remove();
  }
  assert.deepEqual(readdirSync(join(env.berthd.state, 'netns')), []);
});

test('host network and host IPC pods pin only what they own', { skip }, async () => {
  const pod = await runPod(env, {
    linux: { securityContext: { namespaceOptions: { pid: NamespaceMode.CONTAINER, network: NamespaceMode.NODE } } },
  });
  try {
    const i = await info(pod.id);
    assert.deepEqual(Object.keys(i.pinnedNamespaces), ['ipc']);
    const a = await startSleeper(pod, 'h', 3600, NamespaceMode.CONTAINER, { network: NamespaceMode.NODE });
    assert.equal(nsOf(a.pid, 'net'), nsOf('self', 'net'));
    assert.notEqual(nsOf(a.pid, 'ipc'), nsOf('self', 'ipc'));
  } finally {
    await pod.remove();
  }
  const bare = await runPod(env, {
    linux: { securityContext: { namespaceOptions: { pid: NamespaceMode.CONTAINER, network: NamespaceMode.NODE, ipc: NamespaceMode.NODE } } },
  });
  try {
    const i = await info(bare.id);
    assert.deepEqual(i.pinnedNamespaces, {});
    assert.equal(i.pid, 0);
    const a = await startSleeper(bare, 'hh', 3600, NamespaceMode.CONTAINER, { network: NamespaceMode.NODE, ipc: NamespaceMode.NODE });
    assert.equal(nsOf(a.pid, 'ipc'), nsOf('self', 'ipc'));
  } finally {
    await bare.remove();
  }
  assert.deepEqual(readdirSync(join(env.berthd.state, 'netns')), []);
});
