/**
 * Pod sandbox RPCs against a real berthd with real runc, CNI (bridge + host-local on a test
 * 198.18.x.0/24, portmap) and a local registry holding the pause image.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { MessageInitShape } from '@bufbuild/protobuf';
import {
  NamespaceMode,
  PodSandboxState,
  Protocol,
  CgroupDriver,
  type PodSandboxConfigSchema,
  type PodSandboxFilterSchema,
} from '../../src/api/cri/runtime/v1/api_pb.js';
import { startCriEnv, type CriEnv } from '../helpers/cri-env.js';
import { inNetns, isRoot, run, startTcpServer, tcpRead, tcpReadFromNetns, uniqueTag } from '../helpers/netns.js';

type PodConfig = MessageInitShape<typeof PodSandboxConfigSchema>;
const grpcCode = (err: unknown) => (err as { code?: number }).code;
const details = (err: unknown) => String((err as { details?: string }).details ?? (err as Error).message);

let env: CriEnv;
const skip = !isRoot() ? 'needs root' : false;

before(async () => {
  if (!skip) env = await startCriEnv();
});
after(async () => {
  await env?.cleanup();
});

function podConfig(name: string, extra: Omit<PodConfig, 'metadata'> = {}): PodConfig {
  return {
    metadata: { name, namespace: 'default', uid: `uid-${name}-${uniqueTag()}`, attempt: 0 },
    hostname: name,
    labels: { app: name },
    ...extra,
  } as PodConfig;
}

interface VerboseInfo {
  pid: number;
  netNamespace: string;
  netNamespaceClosed: boolean;
  sandboxDir: string;
  runtimeHandler: string;
}

async function info(id: string): Promise<VerboseInfo> {
  const s = await env.berthd.cri.runtime.podSandboxStatus({ podSandboxId: id, verbose: true });
  return JSON.parse(s.info.info!) as VerboseInfo;
}

async function removePod(id: string): Promise<void> {
  await env.berthd.cri.runtime.stopPodSandbox({ podSandboxId: id });
  await env.berthd.cri.runtime.removePodSandbox({ podSandboxId: id });
}

test('a pod gets an IP in the test subnet inside its own netns', { skip }, async () => {
  const { podSandboxId: id } = await env.berthd.cri.runtime.runPodSandbox({ config: podConfig('ip') });
  try {
    const s = await env.berthd.cri.runtime.podSandboxStatus({ podSandboxId: id });
    assert.equal(s.status?.state, PodSandboxState.SANDBOX_READY);
    const ip = s.status?.network?.ip ?? '';
    assert.ok(ip.startsWith(`${env.net.prefix}.`), `pod ip ${ip} not in ${env.net.subnet}`);
    const i = await info(id);
    assert.ok(i.pid > 0);
    assert.ok(existsSync(i.netNamespace), 'netns handle exists');
    assert.match(inNetns(i.netNamespace, 'ip', ['-4', 'addr', 'show', 'eth0']).stdout, new RegExp(`inet ${ip.replace(/\./g, '\\.')}/24`));
    // The pause process lives in that netns: same inode as the handle.
    const r = run('stat', ['-L', '-c', '%i', i.netNamespace]);
    const p = run('stat', ['-L', '-c', '%i', `/proc/${i.pid}/ns/net`]);
    assert.equal(p.stdout.trim(), r.stdout.trim());
    // The hosts file carries the pod IP line for the hostname.
    assert.match(readFileSync(join(i.sandboxDir, 'hosts'), 'utf8'), new RegExp(`^${ip.replace(/\./g, '\\.')}\\tip$`, 'm'));
    assert.equal(readFileSync(join(i.sandboxDir, 'hostname'), 'utf8'), 'ip\n');
    assert.equal(run('nsenter', ['-t', String(i.pid), '-u', 'hostname']).stdout.trim(), 'ip');
  } finally {
    await removePod(id);
  }
});

test('two pods reach each other over the pod network', { skip }, async () => {
  const a = (await env.berthd.cri.runtime.runPodSandbox({ config: podConfig('peer-a') })).podSandboxId;
  const b = (await env.berthd.cri.runtime.runPodSandbox({ config: podConfig('peer-b') })).podSandboxId;
  const ipA = (await env.berthd.cri.runtime.podSandboxStatus({ podSandboxId: a })).status!.network!.ip;
  const server = await startTcpServer((await info(a)).netNamespace, ipA, 7070, 'hello-from-a');
  try {
    const r = tcpReadFromNetns((await info(b)).netNamespace, ipA, 7070);
    assert.equal(r.stdout, 'hello-from-a', r.stderr);
  } finally {
    server.kill();
    await removePod(a);
    await removePod(b);
  }
});

test('a hostPort mapping answers on 127.0.0.1', { skip }, async () => {
  const hostPort = 20000 + Math.floor(Math.random() * 20000);
  const cfg = podConfig('hostport', { portMappings: [{ protocol: Protocol.TCP, containerPort: 8080, hostPort }] });
  const { podSandboxId: id } = await env.berthd.cri.runtime.runPodSandbox({ config: cfg });
  const server = await startTcpServer((await info(id)).netNamespace, '0.0.0.0', 8080, 'via-hostport');
  try {
    assert.equal(await tcpRead('127.0.0.1', hostPort), 'via-hostport');
  } finally {
    server.kill();
    await removePod(id);
  }
  // CNI DEL removed the mapping: nothing answers any more.
  await assert.rejects(tcpRead('127.0.0.1', hostPort, 1000));
});

test('a host-network pod has no netns and sees the host interfaces', { skip }, async () => {
  const cfg = podConfig('hostnet', { linux: { securityContext: { namespaceOptions: { network: NamespaceMode.NODE } } } });
  const { podSandboxId: id } = await env.berthd.cri.runtime.runPodSandbox({ config: cfg });
  try {
    const s = await env.berthd.cri.runtime.podSandboxStatus({ podSandboxId: id });
    assert.equal(s.status?.network?.ip, '');
    assert.equal(s.status?.linux?.namespaces?.options?.network, NamespaceMode.NODE);
    const i = await info(id);
    assert.equal(i.netNamespace, '');
    assert.equal(readlinkSync(`/proc/${i.pid}/ns/net`), readlinkSync('/proc/self/ns/net'));
    assert.ok(!existsSync(join(env.berthd.state, 'netns', id)));
  } finally {
    await removePod(id);
  }
});

test('DNS config lands in the sandbox resolv.conf', { skip }, async () => {
  const cfg = podConfig('dns', {
    dnsConfig: { servers: ['198.18.0.53'], searches: ['svc.cluster.local', 'cluster.local'], options: ['ndots:5', 'timeout:2'] },
  });
  const { podSandboxId: id } = await env.berthd.cri.runtime.runPodSandbox({ config: cfg });
  try {
    const i = await info(id);
    const want = 'search svc.cluster.local cluster.local\nnameserver 198.18.0.53\noptions ndots:5 timeout:2\n';
    assert.equal(readFileSync(join(i.sandboxDir, 'resolv.conf'), 'utf8'), want);
    assert.equal(readFileSync(`/proc/${i.pid}/root/etc/resolv.conf`, 'utf8'), want);
  } finally {
    await removePod(id);
  }
});

test('a duplicate pod name is ALREADY_EXISTS naming the holder', { skip }, async () => {
  const cfg = podConfig('dup');
  const { podSandboxId: id } = await env.berthd.cri.runtime.runPodSandbox({ config: cfg });
  try {
    await assert.rejects(env.berthd.cri.runtime.runPodSandbox({ config: cfg }), (e) => grpcCode(e) === 6 && details(e).includes(id));
  } finally {
    await removePod(id);
  }
  // Removal frees the name.
  const again = (await env.berthd.cri.runtime.runPodSandbox({ config: cfg })).podSandboxId;
  await removePod(again);
});

test('stop and remove are idempotent and leave nothing behind', { skip }, async () => {
  const { podSandboxId: id } = await env.berthd.cri.runtime.runPodSandbox({ config: podConfig('idem') });
  const i = await info(id);
  await env.berthd.cri.runtime.stopPodSandbox({ podSandboxId: id });
  await env.berthd.cri.runtime.stopPodSandbox({ podSandboxId: id });
  const s = await env.berthd.cri.runtime.podSandboxStatus({ podSandboxId: id });
  assert.equal(s.status?.state, PodSandboxState.SANDBOX_NOTREADY);
  assert.equal(s.status?.network?.ip, '');
  assert.ok(!existsSync(i.netNamespace), 'netns removed by stop');
  assert.ok(!existsSync(`/proc/${i.pid}`) || !readFileSync(`/proc/${i.pid}/cmdline`, 'utf8').includes('sleep'), 'pause gone');
  await env.berthd.cri.runtime.removePodSandbox({ podSandboxId: id });
  await env.berthd.cri.runtime.removePodSandbox({ podSandboxId: id });
  assert.ok(!existsSync(i.sandboxDir), 'sandbox dir removed');
  await assert.rejects(env.berthd.cri.runtime.podSandboxStatus({ podSandboxId: id }), (e) => grpcCode(e) === 5);
  // Remove of a READY pod stops it first.
  const ready = (await env.berthd.cri.runtime.runPodSandbox({ config: podConfig('idem-ready') })).podSandboxId;
  const ri = await info(ready);
  await env.berthd.cri.runtime.removePodSandbox({ podSandboxId: ready });
  assert.ok(!existsSync(ri.netNamespace));
  assert.equal((await env.berthd.cri.runtime.listPodSandbox({ filter: { id: ready } })).items.length, 0);
});

test('bad input answers INVALID_ARGUMENT / NOT_FOUND naming the field', { skip }, async () => {
  const rt = env.berthd.cri.runtime;
  await assert.rejects(rt.runPodSandbox({}), (e) => grpcCode(e) === 3 && details(e).includes('config'));
  await assert.rejects(rt.runPodSandbox({ config: { hostname: 'x' } }), (e) => grpcCode(e) === 3 && details(e).includes('config.metadata'));
  await assert.rejects(
    rt.runPodSandbox({ config: { metadata: { name: 'n', namespace: 'ns' } } }),
    (e) => grpcCode(e) === 3 && details(e).includes('config.metadata.uid'),
  );
  await assert.rejects(
    rt.runPodSandbox({ config: { metadata: { namespace: 'ns', uid: 'u' } } }),
    (e) => grpcCode(e) === 3 && details(e).includes('config.metadata.name'),
  );
  await assert.rejects(
    rt.runPodSandbox({ config: podConfig('badrt'), runtimeHandler: 'no-such-handler' }),
    (e) => grpcCode(e) === 3 && details(e).includes('no-such-handler'),
  );
  // The failed attempt released its name.
  const ok = (await rt.runPodSandbox({ config: podConfig('badrt') })).podSandboxId;
  await removePod(ok);
  const unknown = 'f'.repeat(64);
  await assert.rejects(rt.podSandboxStatus({ podSandboxId: unknown }), (e) => grpcCode(e) === 5 && details(e).includes(unknown));
  // Stop is idempotent: an id that names no pod succeeds (CRI; containerd 2.x), as does StopContainer.
  await rt.stopPodSandbox({ podSandboxId: unknown });
  await rt.stopContainer({ containerId: unknown, timeout: 0n });
  await assert.rejects(rt.stopPodSandbox({ podSandboxId: '' }), (e) => grpcCode(e) === 3 && details(e).includes('pod_sandbox_id'));
  await assert.rejects(rt.stopContainer({ containerId: '' }), (e) => grpcCode(e) === 3 && details(e).includes('container_id'));
  await assert.rejects(rt.podSandboxStatus({ podSandboxId: '' }), (e) => grpcCode(e) === 3 && details(e).includes('pod_sandbox_id'));
  await rt.removePodSandbox({ podSandboxId: unknown });
  assert.equal((await rt.listPodSandbox({})).items.filter((p) => p.metadata?.name === 'badrt').length, 0);
});

test('ListPodSandbox filters by id prefix, state and labels', { skip }, async () => {
  const rt = env.berthd.cri.runtime;
  const a = (await rt.runPodSandbox({ config: podConfig('list-a', { labels: { tier: 'web', grp: 'list' } }) })).podSandboxId;
  const b = (await rt.runPodSandbox({ config: podConfig('list-b', { labels: { tier: 'db', grp: 'list' } }) })).podSandboxId;
  try {
    await rt.stopPodSandbox({ podSandboxId: b });
    const ids = async (filter: MessageInitShape<typeof PodSandboxFilterSchema>) => (await rt.listPodSandbox({ filter })).items.map((p) => p.id).sort();
    assert.deepEqual(await ids({ labelSelector: { grp: 'list' } }), [a, b].sort());
    assert.deepEqual(await ids({ labelSelector: { grp: 'list', tier: 'web' } }), [a]);
    assert.deepEqual(await ids({ labelSelector: { grp: 'list' }, state: { state: PodSandboxState.SANDBOX_NOTREADY } }), [b]);
    assert.deepEqual(await ids({ labelSelector: { grp: 'list' }, state: { state: PodSandboxState.SANDBOX_READY } }), [a]);
    assert.deepEqual(await ids({ id: a.slice(0, 12) }), [a]);
    assert.deepEqual(await ids({ id: a }), [a]);
    assert.deepEqual(await ids({ id: 'f'.repeat(64) }), []);
    const item = (await rt.listPodSandbox({ filter: { id: a } })).items[0]!;
    assert.equal(item.metadata?.name, 'list-a');
    assert.equal(item.labels.tier, 'web');
    assert.equal(item.runtimeHandler, 'berth');
    assert.ok(item.createdAt > 0n);
  } finally {
    await removePod(a);
    await removePod(b);
  }
});

test('RuntimeConfig reports the cgroupfs driver; UpdateRuntimeConfig accepts a pod CIDR', { skip }, async () => {
  const r = await env.berthd.cri.runtime.runtimeConfig({});
  assert.equal(r.linux?.cgroupDriver, CgroupDriver.CGROUPFS);
  await env.berthd.cri.runtime.updateRuntimeConfig({ runtimeConfig: { networkConfig: { podCidr: '198.18.0.0/16' } } });
  await env.berthd.cri.runtime.updateRuntimeConfig({});
});
