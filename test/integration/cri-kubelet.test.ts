/**
 * Requests shaped as kubelet and the CRI conformance suite send them, against a real berthd
 * with real runc: what each one must do is checked from inside the container.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { NamespaceMode, SecurityProfile_ProfileType } from '../../src/api/cri/runtime/v1/api_pb.js';
import { startCriEnv, type CriEnv } from '../helpers/cri-env.js';
import { busyboxConfig, runPod, runToExit, type ContainerConfigInit, type TestPod } from '../helpers/cri-container.js';
import { isRoot } from '../helpers/netns.js';

let env: CriEnv;
let seq = 0;
let dir: string;
const skip = !isRoot() ? 'needs root' : false;

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'berth-kubelet-'));
  env = await startCriEnv();
  await env.berthd.cri.image.pullImage({ image: { image: env.busybox.ref } });
});

after(async () => {
  await env?.cleanup();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Runs `script` in busybox, returns exit code and log text; the container is removed. */
async function run(pod: TestPod, script: string, extra: Partial<ContainerConfigInit> = {}): Promise<{ code: number; out: string }> {
  const { id, status, log } = await runToExit(env, pod, busyboxConfig(env, `k${++seq}`, ['sh', '-c', script], extra));
  await env.berthd.cri.runtime.removeContainer({ containerId: id });
  return { code: status.exitCode, out: log.map((l) => l.msg).join('\n') };
}

async function withPod<T>(extra: Parameters<typeof runPod>[1], fn: (pod: TestPod) => Promise<T>): Promise<T> {
  const pod = await runPod(env, extra);
  try {
    return await fn(pod);
  } finally {
    await pod.remove();
  }
}

test('a container of a host-network pod that leaves namespace_options.network at POD joins the host network', { skip }, async () => {
  const hostNet = readlinkSync('/proc/self/ns/net');
  await withPod({ linux: { securityContext: { namespaceOptions: { network: NamespaceMode.NODE, pid: NamespaceMode.CONTAINER } } } }, async (pod) => {
    // As the conformance suite's port-forward spec sends it: no namespace options on the container.
    const r = await run(pod, 'readlink /proc/self/ns/net; hostname');
    assert.equal(r.code, 0, r.out);
    const [net, host] = r.out.split('\n');
    assert.equal(net, hostNet, 'the container is in the host network namespace');
    assert.equal(host, hostname(), 'and in the host UTS namespace');
    // Explicit NODE still works as before.
    const n = await run(pod, 'readlink /proc/self/ns/net', { linux: { securityContext: { namespaceOptions: { network: NamespaceMode.NODE, pid: NamespaceMode.CONTAINER } } } });
    assert.equal(n.out, hostNet);
  });
});

test('a pod-network pod: a container at the default mode is in the pod network, not the host', { skip }, async () => {
  const hostNet = readlinkSync('/proc/self/ns/net');
  await withPod({}, async (pod) => {
    const r = await run(pod, 'readlink /proc/self/ns/net');
    assert.equal(r.code, 0, r.out);
    assert.notEqual(r.out, hostNet);
  });
});

test('seccomp Localhost given for the sandbox and the container (profile without architectures): the pod runs, chmod is refused', { skip }, async () => {
  const profile = join(dir, 'block-chmod.json');
  writeFileSync(profile, JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['chmod', 'fchmodat'], action: 'SCMP_ACT_ERRNO' }] }));
  const seccomp = { profileType: SecurityProfile_ProfileType.Localhost, localhostRef: profile };
  // Shaped as the conformance spec: pid namespace shared (a pause runs under the profile too).
  await withPod({ linux: { securityContext: { seccomp, namespaceOptions: { pid: NamespaceMode.POD } } } }, async (pod) => {
    const r = await run(pod, 'chmod 400 /; echo "rc=$?"', { linux: { securityContext: { seccomp } } });
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /Operation not permitted/);
    assert.match(r.out, /rc=1/);
    const free = await run(pod, 'touch /tmp/f && chmod 400 /tmp/f && stat -c %a /tmp/f');
    assert.equal(free.out, '400', 'a container without the profile may chmod');
  });
  // A sandbox naming a profile that does not exist is refused up front, naming the file.
  await assert.rejects(runPod(env, { linux: { securityContext: { seccomp: { profileType: SecurityProfile_ProfileType.Localhost, localhostRef: join(dir, 'missing.json') } } } }), (e: { code: number; details: string }) => e.code === 3 && e.details.includes('missing.json'));
});
