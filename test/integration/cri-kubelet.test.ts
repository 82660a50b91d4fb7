/**
 * Requests shaped as kubelet and the CRI conformance suite send them, against a real berthd
 * with real runc: what each one must do is checked from inside the container.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContainerState, MountPropagation, NamespaceMode, SecurityProfile_ProfileType, SupplementalGroupsPolicy } from '../../src/api/cri/runtime/v1/api_pb.js';
import { startCriEnv, type CriEnv } from '../helpers/cri-env.js';
import { busyboxConfig, createContainer, logText, runPod, runToExit, waitForState, type ContainerConfigInit, type TestPod } from '../helpers/cri-container.js';
import { isRoot } from '../helpers/netns.js';

let env: CriEnv;
let seq = 0;
let dir: string;
const skip = !isRoot() ? 'needs root' : false;

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'berth-kubelet-'));
  // A second handler (containerd's runc shim) and one whose OCI runtime cannot answer
  // `features`: Status must list all three, with what was probed for each.
  env = await startCriEnv({
    extraToml: `[runtimes.runcv2]\ntype = "io.containerd.runc.v2"\n[runtimes.nofeatures]\ntype = "io.containerd.berth.v1"\nbinary = "/bin/false"\n`,
  });
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
    const n = await run(pod, 'readlink /proc/self/ns/net', {
      linux: { securityContext: { namespaceOptions: { network: NamespaceMode.NODE, pid: NamespaceMode.CONTAINER } } },
    });
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
  await assert.rejects(
    runPod(env, { linux: { securityContext: { seccomp: { profileType: SecurityProfile_ProfileType.Localhost, localhostRef: join(dir, 'missing.json') } } } }),
    (e: { code: number; details: string }) => e.code === 3 && e.details.includes('missing.json'),
  );
});

test('Status lists every configured handler, the default also under the empty name, with probed features', { skip }, async () => {
  const st = await env.berthd.cri.runtime.status({ verbose: true });
  const byName = new Map(st.runtimeHandlers.map((h) => [h.name, h.features]));
  assert.deepEqual([...byName.keys()].sort(), ['', 'berth', 'nofeatures', 'runcv2']);
  // runc 1.1 lists rro and the kernel (≥ 5.12) applies it: the probe finds it for runc handlers.
  assert.equal(byName.get('berth')?.recursiveReadOnlyMounts, true);
  assert.equal(byName.get('runcv2')?.recursiveReadOnlyMounts, true);
  assert.deepEqual(byName.get(''), byName.get('berth'), 'the empty name is the default handler');
  // `/bin/false features` fails: not advertised, and why is in the verbose info.
  assert.equal(byName.get('nofeatures')?.recursiveReadOnlyMounts, false);
  const probed = JSON.parse(st.info.features!) as { handlers: Record<string, { reasons: Record<string, string> }> };
  assert.match(probed.handlers.nofeatures!.reasons.recursive_read_only_mounts!, /\/bin\/false features/);
  // User namespaces with idmapped volumes (berthd makes the idmapped mounts; the probe tried
  // one): offered where the OCI runtime answers, not by the handler that cannot.
  assert.equal(byName.get('berth')?.userNamespaces, true, JSON.stringify(probed.handlers.berth));
  assert.equal(byName.get('runcv2')?.userNamespaces, true);
  assert.equal(byName.get('nofeatures')?.userNamespaces, false);
  assert.match(probed.handlers.nofeatures!.reasons.user_namespaces!, /\/bin\/false features/);
  assert.equal(st.features?.supplementalGroupsPolicy, true);
  assert.equal(st.features?.userNamespacesHostNetwork, true, 'tested in cri-userns.test.ts');
});

test('recursive read-only mounts (reported true): a submount of the bind is read-only too; without rro it stays writable', { skip }, async () => {
  const host = join(dir, 'rro');
  mkdirSync(join(host, 'sub'), { recursive: true });
  const mnt = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'berth-rro-test', join(host, 'sub')], { encoding: 'utf8' });
  assert.equal(mnt.status, 0, mnt.stderr);
  try {
    await withPod({}, async (pod) => {
      const probe =
        'if touch /data/sub/f 2>/dev/null; then echo sub-writable; else echo sub-ro; fi; if touch /data/f 2>/dev/null; then echo top-writable; else echo top-ro; fi';
      const rro = await run(pod, probe, {
        mounts: [{ containerPath: '/data', hostPath: host, readonly: true, recursiveReadOnly: true, propagation: MountPropagation.PROPAGATION_PRIVATE }],
      });
      assert.deepEqual(rro.out.split('\n'), ['sub-ro', 'top-ro']);
      const ro = await run(pod, probe, { mounts: [{ containerPath: '/data', hostPath: host, readonly: true }] });
      assert.deepEqual(ro.out.split('\n'), ['sub-writable', 'top-ro'], 'plain readonly leaves submounts writable (what rro is for)');
      // Refused up front, naming the field.
      await assert.rejects(
        env.berthd.cri.runtime.createContainer({
          podSandboxId: pod.id,
          sandboxConfig: pod.config,
          config: busyboxConfig(env, `k${++seq}`, ['true'], { mounts: [{ containerPath: '/data', hostPath: host, readonly: false, recursiveReadOnly: true }] }),
        }),
        (e: { code: number; details: string }) => e.code === 3 && e.details.includes('readonly') && e.details.includes('recursive_read_only'),
      );
    });
  } finally {
    spawnSync('umount', [join(host, 'sub')]);
  }
});

test('SupplementalGroupsPolicy Merge and Strict as kubelet sends them; ContainerStatus.user is what the process got', { skip }, async () => {
  // kubelet puts the pod's policy and groups into the sandbox and every container context.
  for (const [policy, expected] of [
    [SupplementalGroupsPolicy.Merge, [1002, 100, 3000]], // app is in "users" (100) in the image's /etc/group
    [SupplementalGroupsPolicy.Strict, [1002, 3000]],
  ] as const) {
    const podSc = { runAsUser: { value: 1002n }, supplementalGroups: [3000n], supplementalGroupsPolicy: policy };
    await withPod({ linux: { securityContext: podSc } }, async (pod) => {
      const cfg = busyboxConfig(env, `k${++seq}`, ['sh', '-c', 'id -G; exec sleep 60'], { linux: { securityContext: { ...podSc } } });
      const id = await createContainer(env, pod, cfg);
      try {
        await env.berthd.cri.runtime.startContainer({ containerId: id });
        const s = await waitForState(env, id, ContainerState.CONTAINER_RUNNING);
        let groups = '';
        for (let i = 0; i < 100 && groups === ''; i++) {
          groups = logText(s.logPath);
          if (groups === '') await new Promise((r) => setTimeout(r, 50));
        }
        assert.deepEqual(
          groups
            .split(' ')
            .map(Number)
            .sort((a, b) => a - b),
          [...expected].sort((a, b) => a - b),
          `${SupplementalGroupsPolicy[policy]}: id -G`,
        );
        const u = (await env.berthd.cri.runtime.containerStatus({ containerId: id })).status?.user?.linux;
        assert.equal(u?.uid, 1002n);
        assert.equal(u?.gid, 1002n);
        assert.deepEqual(
          u?.supplementalGroups.map(Number).sort((a, b) => a - b),
          [...expected].sort((a, b) => a - b),
          `${SupplementalGroupsPolicy[policy]}: ContainerStatus.user`,
        );
      } finally {
        await env.berthd.cri.runtime.stopContainer({ containerId: id, timeout: 0n }).catch(() => undefined);
        await env.berthd.cri.runtime.removeContainer({ containerId: id }).catch(() => undefined);
      }
    });
  }
});

test('an env value that is not valid UTF-8 does not fail CreateContainer; the other envs are intact', { skip }, async () => {
  await withPod({}, async (pod) => {
    const enc = new TextEncoder();
    const r = await run(pod, 'echo "good=$GOOD"; printf %s "$BAD" | od -An -tx1 | tr -s " "', {
      envs: [
        { key: 'GOOD', value: enc.encode('héllo') },
        { key: 'BAD', value: new Uint8Array([0x61, 0xff, 0x62]) },
      ],
    });
    assert.equal(r.code, 0, r.out);
    const [good, bad] = r.out.split('\n');
    assert.equal(good, 'good=héllo');
    // The bad byte became U+FFFD (ef bf bd), as Go's JSON writes it in containerd's spec.
    assert.equal(bad!.trim(), '61 ef bf bd 62');
  });
});

test('UpdatePodSandboxResources is recorded and shown by PodSandboxStatus; unknown pods are NOT_FOUND', { skip }, async () => {
  await withPod({}, async (pod) => {
    const rt = env.berthd.cri.runtime;
    // As kubelet sends it on an in-place resize.
    await rt.updatePodSandboxResources({
      podSandboxId: pod.id,
      overhead: { cpuShares: 10n, memoryLimitInBytes: 0n },
      resources: { cpuPeriod: 100000n, cpuQuota: 50000n, cpuShares: 512n, memoryLimitInBytes: 256n * 1024n * 1024n },
    });
    const st = await rt.podSandboxStatus({ podSandboxId: pod.id, verbose: true });
    const config = (JSON.parse(st.info.info!) as { config: { linux?: { resources?: Record<string, string>; overhead?: Record<string, string> } } }).config;
    assert.equal(config.linux?.resources?.cpuQuota, '50000');
    assert.equal(config.linux?.resources?.memoryLimitInBytes, String(256 * 1024 * 1024));
    assert.equal(config.linux?.overhead?.cpuShares, '10');
    await assert.rejects(rt.updatePodSandboxResources({ podSandboxId: 'f'.repeat(64), resources: { cpuShares: 2n } }), (e: { code: number }) => e.code === 5);
  });
});

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const m of it) out.push(m);
  return out;
}

test('streaming list RPCs answer what their unary twins answer, with the same filters', { skip }, async () => {
  const rt = env.berthd.cri.runtime;
  const tag = `stream-${process.pid}`;
  const pods = [await runPod(env, { labels: { grp: tag, n: '1' } }), await runPod(env, { labels: { grp: tag, n: '2' } })];
  try {
    const c = await createContainer(env, pods[0]!, busyboxConfig(env, `k${++seq}`, ['sleep', '60'], { labels: { grp: tag } }));
    await rt.startContainer({ containerId: c });
    const sort = (ids: string[]) => [...ids].sort();
    const pf = { labelSelector: { grp: tag } };
    const streamed = (await collect(rt.streamPodSandboxes({ filter: pf }))).flatMap((m) => m.podSandboxes);
    assert.deepEqual(sort(streamed.map((p) => p.id)), sort((await rt.listPodSandbox({ filter: pf })).items.map((p) => p.id)));
    assert.equal(streamed.length, 2);
    const one = (await collect(rt.streamPodSandboxes({ filter: { labelSelector: { grp: tag, n: '2' } } }))).flatMap((m) => m.podSandboxes);
    assert.deepEqual(
      one.map((p) => p.id),
      [pods[1]!.id],
    );
    assert.deepEqual(await collect(rt.streamPodSandboxes({ filter: { id: 'f'.repeat(64) } })), [], 'no items: no page, the stream just ends');

    const cs = (await collect(rt.streamContainers({ filter: { labelSelector: { grp: tag } } }))).flatMap((m) => m.containers);
    assert.deepEqual(
      cs.map((x) => x.id),
      [c],
    );
    const stats = (await collect(rt.streamContainerStats({ filter: { id: c } }))).flatMap((m) => m.containerStats);
    assert.deepEqual(
      stats.map((s) => s.attributes?.id),
      [c],
    );
    const pstats = (await collect(rt.streamPodSandboxStats({ filter: { labelSelector: { grp: tag } } }))).flatMap((m) => m.podSandboxStats);
    assert.deepEqual(sort(pstats.map((s) => s.attributes?.id ?? '')), sort(pods.map((p) => p.id)));
    const metrics = (await collect(rt.streamPodSandboxMetrics({}))).flatMap((m) => m.podSandboxMetrics);
    const listed = (await rt.listPodSandboxMetrics({})).podMetrics;
    assert.deepEqual(sort(metrics.map((m) => m.podSandboxId)), sort(listed.map((m) => m.podSandboxId)));
    assert.ok(metrics.some((m) => m.podSandboxId === pods[0]!.id));

    const imgs = (await collect(env.berthd.cri.image.streamImages({}))).flatMap((m) => m.images);
    assert.deepEqual(sort(imgs.map((i) => i.id)), sort((await env.berthd.cri.image.listImages({})).images.map((i) => i.id)));
    const bb = (await collect(env.berthd.cri.image.streamImages({ filter: { image: { image: env.busybox.ref } } }))).flatMap((m) => m.images);
    assert.equal(bb.length, 1);
    assert.ok(bb[0]!.repoTags.includes(env.busybox.ref));
  } finally {
    for (const p of pods) await p.remove();
  }
});
