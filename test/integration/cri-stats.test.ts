/**
 * Stats and CRI metrics move with real work: a container burning CPU and holding memory, in a
 * pod with a real network namespace; the berth Trace RPC returns the pod's startup spans.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { ContainerState } from '../../src/api/cri/runtime/v1/api_pb.js';
import { Berth } from '../../src/api/berth/v1/berth_pb.js';
import { createPromiseClient, unixChannel } from '../../src/cri/server/grpc.js';
import { startCriEnv, type CriEnv } from '../helpers/cri-env.js';
import { busyboxConfig, createContainer, runPod, waitForState, type TestPod } from '../helpers/cri-container.js';

let env: CriEnv;
let pod: TestPod;
let burner: string;
const MiB = 1024n * 1024n;

before(async () => {
  env = await startCriEnv();
  await env.berthd.cri.image.pullImage({ image: { image: env.busybox.ref } });
  pod = await runPod(env, { labels: { app: 'stats' } });
  // One process spins; the shell holds ~40 MB in a variable (used after the sleep, so ash
  // cannot exec the sleep and drop it).
  burner = await createContainer(
    env,
    pod,
    busyboxConfig(env, 'burner', ['sh', '-c', 'while :; do :; done & x=$(head -c 40000000 /dev/zero | tr "\\0" a); sleep 1000; echo ${#x}'], {
      labels: { role: 'burn' },
    }),
  );
  await env.berthd.cri.runtime.startContainer({ containerId: burner });
  await waitForState(env, burner, ContainerState.CONTAINER_RUNNING);
});

after(async () => {
  await pod?.remove();
  await env?.cleanup();
});

async function waitFor<T>(fn: () => Promise<T | undefined>, what: string, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

test('ContainerStats: CPU time grows, usage_nano_cores matches its samples, memory shows the held bytes, writable layer is measured', async () => {
  const rt = env.berthd.cri.runtime;
  const mem = await waitFor(async () => {
    const s = (await rt.containerStats({ containerId: burner })).stats!;
    return (s.memory?.workingSetBytes?.value ?? 0n) > 35n * MiB ? s : undefined;
  }, 'working set above 35 MiB');
  assert.ok(mem.memory!.usageBytes!.value >= mem.memory!.workingSetBytes!.value);
  assert.ok(mem.memory!.rssBytes!.value > 30n * MiB);
  assert.ok(mem.memory!.pageFaults!.value > 0n);
  assert.equal(mem.attributes?.id, burner);
  assert.equal(mem.attributes?.metadata?.name, 'burner');
  assert.equal(mem.attributes?.labels.role, 'burn');
  assert.ok(mem.writableLayer?.fsId?.mountpoint, 'writable layer has a mountpoint');
  assert.ok(mem.writableLayer?.inodesUsed !== undefined);

  const a = (await rt.containerStats({ containerId: burner })).stats!;
  // The next reading: berthd shares one reading among the calls of its sampling window.
  const b = await waitFor(async () => {
    const s = (await rt.containerStats({ containerId: burner })).stats!;
    return s.cpu!.timestamp > a.cpu!.timestamp ? s : undefined;
  }, 'a new CPU reading');
  const used = b.cpu!.usageCoreNanoSeconds!.value - a.cpu!.usageCoreNanoSeconds!.value;
  assert.ok(used > 0n, `cpu time of a busy loop grows (by ${used} ns)`);
  // The rate is the usage between the two samples over the time between them (no bound on how
  // much CPU a busy machine gave the loop).
  const dt = b.cpu!.timestamp - a.cpu!.timestamp;
  assert.ok(dt > 0n, 'samples carry increasing timestamps');
  const rate = b.cpu!.usageNanoCores?.value ?? 0n;
  const expected = (used * 1_000_000_000n) / dt;
  const diff = rate > expected ? rate - expected : expected - rate;
  assert.ok(diff * 10n <= expected + 1n, `usage_nano_cores ${rate} ≈ usage delta / time delta ${expected}`);
});

test('ListContainerStats filters by pod, id prefix and labels', async () => {
  const rt = env.berthd.cri.runtime;
  const byPod = await rt.listContainerStats({ filter: { podSandboxId: pod.id } });
  assert.deepEqual(
    byPod.stats.map((s) => s.attributes?.id),
    [burner],
  );
  assert.equal((await rt.listContainerStats({ filter: { id: burner.slice(0, 10) } })).stats.length, 1);
  assert.equal((await rt.listContainerStats({ filter: { labelSelector: { role: 'other' } } })).stats.length, 0);
});

test('PodSandboxStats: pod CPU, memory, process count, eth0 counters and its containers', async () => {
  const rt = env.berthd.cri.runtime;
  const s = (await rt.podSandboxStats({ podSandboxId: pod.id })).stats!;
  assert.equal(s.attributes?.id, pod.id);
  assert.equal(s.attributes?.labels.app, 'stats');
  const l = s.linux!;
  assert.ok(l.cpu!.usageCoreNanoSeconds!.value > 0n);
  assert.ok(l.memory!.workingSetBytes!.value > 35n * MiB);
  // pause + sh + spinning sh + sleep
  assert.ok(l.process!.processCount!.value >= 4n, `process count ${l.process?.processCount?.value}`);
  assert.equal(l.network?.defaultInterface?.name, 'eth0');
  assert.ok(l.network!.interfaces.every((i) => i.name !== 'lo'));
  assert.deepEqual(
    l.containers.map((c) => c.attributes?.id),
    [burner],
  );
  const list = await rt.listPodSandboxStats({ filter: { labelSelector: { app: 'stats' } } });
  assert.deepEqual(
    list.stats.map((x) => x.attributes?.id),
    [pod.id],
  );
  assert.equal((await rt.listPodSandboxStats({ filter: { labelSelector: { app: 'none' } } })).stats.length, 0);
});

test('pod network counters move when the pod receives traffic', async () => {
  const rt = env.berthd.cri.runtime;
  const rx = async () => (await rt.podSandboxStats({ podSandboxId: pod.id })).stats!.linux!.network!.defaultInterface!.rxBytes!.value;
  const before = await rx();
  const st = await rt.podSandboxStatus({ podSandboxId: pod.id });
  const ip = st.status!.network!.ip;
  // Only addresses of the test's own subnet (inside 198.18.0.0/15) are ever sent to.
  assert.ok(ip.startsWith(`${env.net.prefix}.`), `pod ip ${ip} in ${env.net.subnet}`);
  // Datagrams from the host to the pod (inside our own test subnet); counted on arrival at eth0.
  const { createSocket } = await import('node:dgram');
  const sock = createSocket('udp4');
  try {
    for (let i = 0; i < 4; i++) await new Promise<void>((r, j) => sock.send(Buffer.alloc(1000), 9, ip, (e) => (e ? j(e) : r())));
  } finally {
    sock.close();
  }
  // Counted once the datagrams reach eth0: wait for that, not for a fixed time.
  const grown = await waitFor(async () => {
    const n = (await rx()) - before;
    return n >= 4000n ? n : undefined;
  }, 'rx bytes grown by the 4 datagrams');
  assert.ok(grown >= 4000n, 'rx bytes grew by the datagrams');
});

test('ListMetricDescriptors and ListPodSandboxMetrics expose cAdvisor-named series for the pod and its container', async () => {
  const rt = env.berthd.cri.runtime;
  const d = await rt.listMetricDescriptors({});
  const names = d.descriptors.map((x) => x.name);
  for (const n of ['container_cpu_usage_seconds_total', 'container_memory_working_set_bytes', 'container_network_receive_bytes_total', 'container_processes'])
    assert.ok(names.includes(n), n);
  const m = await rt.listPodSandboxMetrics({});
  const mine = m.podMetrics.find((p) => p.podSandboxId === pod.id);
  assert.ok(mine, 'pod present');
  const rxMetric = mine.metrics.find((x) => x.name === 'container_network_receive_bytes_total');
  assert.deepEqual(rxMetric?.labelValues, ['eth0', pod.config.metadata!.name, 'default']);
  const c = mine.containerMetrics.find((x) => x.containerId === burner);
  const ws = c?.metrics.find((x) => x.name === 'container_memory_working_set_bytes');
  assert.ok((ws?.value?.value ?? 0n) > 35n * MiB);
  assert.deepEqual(ws?.labelValues, ['burner', pod.config.metadata!.name, 'default']);
});

test('Trace returns the RunPodSandbox and container steps of the pod, in start order', async () => {
  const channel = unixChannel(env.berthd.socket);
  try {
    const berth = createPromiseClient(Berth, channel, {});
    const r = await berth.trace({ podSandboxId: pod.id.slice(0, 12) });
    const names = r.spans.map((s) => s.name);
    for (const n of ['reserve-name', 'task-start']) assert.ok(names.includes(n), `${n} in ${names.join(',')}`);
    assert.ok(
      names.some((n) => n.startsWith('CreateContainer.')),
      names.join(','),
    );
    for (let i = 1; i < r.spans.length; i++) assert.ok(r.spans[i]!.startUnixNano >= r.spans[i - 1]!.startUnixNano);
    assert.ok(r.spans.every((s) => s.durationNano >= 0n && s.startUnixNano > 1_600_000_000_000_000_000n));
    await assert.rejects(berth.trace({ podSandboxId: 'f'.repeat(64) }), (e: unknown) => (e as { code?: number }).code === 5);
  } finally {
    channel.close();
  }
});
