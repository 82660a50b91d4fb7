/**
 * Pods with their own user namespace (Kubernetes hostUsers: false → CRI userns_options mode
 * POD with uid/gid mappings), observed from inside the containers and from the host.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { NamespaceMode, ContainerState } from '../../src/api/cri/runtime/v1/api_pb.js';
import { startCriEnv, type CriEnv } from '../helpers/cri-env.js';
import { busyboxConfig, createContainer, logText, runPod, runToExit, waitForState, type PodConfigInit, type TestPod } from '../helpers/cri-container.js';
import { until } from '../helpers/process.js';
import { awaitCrashAndRecover, restartWithFaults } from '../helpers/faults.js';

const isRoot = process.getuid?.() === 0;

/**
 * Whether a process in a new user namespace can run at all. It cannot where the kernel refuses
 * user namespaces, or where a host directory on the way is not searchable by others (this
 * machine's / is mode 0644: inside a user namespace every exec and /proc/self open then fails
 * with EACCES); there the pods cannot run, and the tests check that berth fails cleanly.
 */
function usernsRefusal(): string | undefined {
  if (!isRoot) return 'needs root';
  const rootMode = statSync('/').mode & 0o777;
  if ((rootMode & 0o001) === 0) return `/ is mode ${rootMode.toString(8)}: not searchable from a user namespace`;
  const r = spawnSync('unshare', ['--user', '/bin/true'], { encoding: 'utf8', timeout: 10_000 });
  return r.status === 0 ? undefined : r.stderr.trim() || `unshare exited ${r.status}`;
}
const refusal = usernsRefusal();
const canRun = isRoot && refusal === undefined;
const skipRun = canRun ? false : `user namespaces refused here: ${refusal}`;
const HOST_UID = 400000;
const HOST_GID = 500000;
const SIZE = 65536;

function usernsPod(extra: { pid?: NamespaceMode; network?: NamespaceMode } = {}): Partial<PodConfigInit> {
  return {
    linux: {
      securityContext: {
        namespaceOptions: {
          network: extra.network ?? NamespaceMode.POD,
          ipc: NamespaceMode.POD,
          pid: extra.pid ?? NamespaceMode.CONTAINER,
          usernsOptions: {
            mode: NamespaceMode.POD,
            uids: [{ hostId: HOST_UID, containerId: 0, length: SIZE }],
            gids: [{ hostId: HOST_GID, containerId: 0, length: SIZE }],
          },
        },
      },
    },
  };
}

/** Uid/Gid lines of /proc/PID/status: [real, effective, saved, fs]. */
function hostIds(pid: number): { uid: number; gid: number } {
  const st = readFileSync(`/proc/${pid}/status`, 'utf8');
  const uid = Number(/^Uid:\s+(\d+)/m.exec(st)![1]);
  const gid = Number(/^Gid:\s+(\d+)/m.exec(st)![1]);
  return { uid, gid };
}

/** Keys of the remapped (ownership-shifted copy) snapshots of `e`'s overlayfs snapshotter. */
function remaps(e: CriEnv): string[] {
  const db = new Database(join(e.berthd.root, 'snapshots', 'overlayfs', 'metadata.db'), { readonly: true, fileMustExist: true });
  try {
    return (db.prepare(`SELECT key FROM snapshots WHERE key LIKE '%-remap-%'`).all() as { key: string }[]).map((r) => r.key);
  } finally {
    db.close();
  }
}

/** mountinfo of this (the host's) mount namespace: mount point and super options of each mount. */
function hostMounts(): { point: string; superOptions: string }[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      const f = l.split(' ');
      return { point: f[4] ?? '', superOptions: f[f.indexOf('-') + 3] ?? '' };
    });
}

/** Mount points strictly below `<state>/idmap/` (idmapped staging entries). */
function stagingMounts(e: CriEnv): string[] {
  return hostMounts()
    .map((m) => m.point)
    .filter((p) => p.startsWith(`${e.berthd.state}/idmap/`));
}

/** The host mount of container `id`'s rootfs (the shim mounts it on <bundle>/rootfs). */
function rootfsMount(id: string): { point: string; superOptions: string } | undefined {
  return hostMounts().find((m) => m.point.endsWith(`/${id}/rootfs`));
}

/** The pid of a running container, from its verbose status. */
async function containerPid(e: CriEnv, id: string): Promise<number> {
  const verbose = await e.berthd.cri.runtime.containerStatus({ containerId: id, verbose: true });
  const pid = Number(JSON.parse(verbose.info.info ?? '{}').pid);
  assert.ok(pid > 0, `container pid in verbose info: ${verbose.info.info}`);
  return pid;
}

let env: CriEnv;
const pods: TestPod[] = [];

before(async () => {
  if (!isRoot) return;
  env = await startCriEnv();
  await env.berthd.cri.image.pullImage({ image: { image: env.busybox.ref } });
});

after(async () => {
  if (!isRoot) return;
  for (const p of pods) await p.remove();
  await env.cleanup();
});

test('a hostUsers=false pod runs its containers as root inside, as the mapped ids on the host', { skip: skipRun }, async () => {
  const pod = await runPod(env, usernsPod());
  pods.push(pod);

  const script = [
    'cat /proc/self/uid_map',
    'cat /proc/self/gid_map',
    'echo id=$(id -u):$(id -g)',
    'echo passwd=$(stat -c %u:%g /etc/passwd)',
    'touch /made-by-root && echo touch=ok',
    'echo net=$(ls /sys/class/net | tr "\\n" " ")',
  ].join('; ');
  const { status: st, log } = await runToExit(env, pod, busyboxConfig(env, 'probe', ['sh', '-c', script]));
  const out = log.map((l) => l.msg).join('\n');
  assert.equal(st.exitCode, 0, out);
  assert.match(out, new RegExp(`^\\s*0\\s+${HOST_UID}\\s+${SIZE}$`, 'm'), 'uid_map');
  assert.match(out, new RegExp(`^\\s*0\\s+${HOST_GID}\\s+${SIZE}$`, 'm'), 'gid_map');
  assert.match(out, /^id=0:0$/m);
  assert.match(out, /^passwd=0:0$/m, 'image files belong to the container root');
  assert.match(out, /^touch=ok$/m, 'container root can write its rootfs');
  assert.match(out, /^net=.*\beth0\b/m, 'sysfs of the pod network namespace is mounted (netns owned by the userns)');

  // From the host: a long-running container's process has the mapped ids.
  const id = await createContainer(env, pod, busyboxConfig(env, 'sleeper', ['sleep', '3600']));
  await env.berthd.cri.runtime.startContainer({ containerId: id });
  const s = await waitForState(env, id, ContainerState.CONTAINER_RUNNING);
  const verbose = await env.berthd.cri.runtime.containerStatus({ containerId: id, verbose: true });
  const pid = Number(JSON.parse(verbose.info.info ?? '{}').pid);
  assert.ok(pid > 0, `container pid in verbose info: ${verbose.info.info}`);
  assert.deepEqual(hostIds(pid), { uid: HOST_UID, gid: HOST_GID });
  assert.notEqual(readlinkSync(`/proc/${pid}/ns/user`), readlinkSync('/proc/self/ns/user'), 'own user namespace');
  assert.equal(s.state, ContainerState.CONTAINER_RUNNING);
  // ContainerStatus.user: the ids inside the user namespace, read from the live process.
  const u = verbose.status?.user?.linux;
  assert.equal(u?.uid, 0n);
  assert.equal(u?.gid, 0n);

  // The rootfs is an overlay over idmapped image layers (no copy of the image): seen from the
  // host, the image's root-owned files belong to the mapped ids, and a file the container's
  // root made in its writable layer is the mapped uid on disk.
  const m = rootfsMount(id);
  assert.ok(m, 'the container rootfs is mounted on the host');
  assert.match(m.superOptions, new RegExp(`lowerdir=${env.berthd.state}/idmap/`), 'the overlay is over the idmapped layer clones');
  assert.deepEqual(stagingMounts(env), [], 'the staging mounts are detached once the overlay holds them');
  const passwd = statSync(`/proc/${pid}/root/etc/passwd`);
  assert.deepEqual([passwd.uid, passwd.gid], [HOST_UID, HOST_GID], 'image files as the host sees them through the idmapped layer');
  const writer = await createContainer(env, pod, busyboxConfig(env, 'writer', ['sh', '-c', 'echo x > /written && exec sleep 3600']));
  await env.berthd.cri.runtime.startContainer({ containerId: writer });
  await waitForState(env, writer, ContainerState.CONTAINER_RUNNING);
  const wpid = await containerPid(env, writer);
  await until(() => existsSync(`/proc/${wpid}/root/written`), 'the container wrote /written');
  assert.equal(statSync(`/proc/${wpid}/root/written`).uid, HOST_UID, 'a write by the container root is the mapped uid on disk');
  assert.deepEqual(remaps(env), [], 'no ownership-shifted image copy was made');
});

test(
  'a hostUsers=true pod as kubelet sends it (userns_options mode NODE, no mappings) is in the host user namespace, rootfs as is',
  { skip: skipRun },
  async () => {
    const pod = await runPod(env, {
      linux: {
        securityContext: {
          namespaceOptions: { network: NamespaceMode.POD, ipc: NamespaceMode.POD, pid: NamespaceMode.CONTAINER, usernsOptions: { mode: NamespaceMode.NODE } },
        },
      },
    });
    pods.push(pod);
    const id = await createContainer(env, pod, busyboxConfig(env, 'hostusers', ['sh', '-c', 'cat /proc/self/uid_map; exec sleep 3600']));
    await env.berthd.cri.runtime.startContainer({ containerId: id });
    await waitForState(env, id, ContainerState.CONTAINER_RUNNING);
    const pid = await containerPid(env, id);
    assert.equal(readlinkSync(`/proc/${pid}/ns/user`), readlinkSync('/proc/self/ns/user'), 'the host user namespace');
    assert.deepEqual(hostIds(pid), { uid: 0, gid: 0 });
    assert.match(readFileSync(`/proc/${pid}/uid_map`, 'utf8'), /^\s*0\s+0\s+4294967295$/m);
    assert.equal(statSync(`/proc/${pid}/root/etc/passwd`).uid, 0);
    assert.doesNotMatch(rootfsMount(id)?.superOptions ?? '', /\/idmap\//, 'image layers not idmapped');
  },
);

test(
  'procMount Unmasked as kubelet sends it (empty masked/readonly lists, userns pod): nothing masked; Default lists keep /proc masked',
  { skip: skipRun },
  async () => {
    const pod = await runPod(env, usernsPod());
    pods.push(pod);
    const probe = ['sh', '-c', 'grep -c -E " /proc/(timer_list|kcore|sys|keys) " /proc/self/mounts || true'];
    const unmasked = await runToExit(env, pod, busyboxConfig(env, 'unmasked', probe, { linux: { securityContext: { maskedPaths: [], readonlyPaths: [] } } }));
    assert.equal(logText(unmasked.status.logPath), '0');
    const masked = await runToExit(
      env,
      pod,
      busyboxConfig(env, 'masked', probe, {
        linux: { securityContext: { maskedPaths: ['/proc/timer_list', '/proc/kcore', '/proc/keys'], readonlyPaths: ['/proc/sys'] } },
      }),
    );
    assert.notEqual(logText(masked.status.logPath), '0', 'the Default lists mask and protect /proc');
  },
);

test('containers of one userns pod share its user, network and IPC namespaces', { skip: skipRun }, async () => {
  const pod = await runPod(env, usernsPod());
  pods.push(pod);
  const show = ['sh', '-c', 'for n in user net ipc uts; do echo $n=$(readlink /proc/self/ns/$n); done'];
  const a = await runToExit(env, pod, busyboxConfig(env, 'a', show));
  const b = await runToExit(env, pod, busyboxConfig(env, 'b', show));
  const ta = logText(a.status.logPath);
  const tb = logText(b.status.logPath);
  assert.equal(ta, tb);
  assert.match(ta, /^user=user:\[\d+\]$/m);
  assert.doesNotMatch(ta, new RegExp(readlinkSync('/proc/self/ns/user').replace(/[[\]]/g, '\\$&')));
});

test('a shared-pid userns pod (with a pause process) works too', { skip: skipRun }, async () => {
  const pod = await runPod(env, usernsPod({ pid: NamespaceMode.POD }));
  pods.push(pod);
  const { status: st, log } = await runToExit(env, pod, busyboxConfig(env, 'ps', ['sh', '-c', 'id -u; ps -o pid,comm | wc -l']));
  assert.equal(st.exitCode, 0, log.map((l) => l.msg).join('\n'));
  assert.equal(log[0]?.msg, '0');
});

test(
  "a volume with the pod mappings (as kubelet sends it) is idmapped: host root files are the container root's, and writes land as host root",
  { skip: skipRun },
  async () => {
    const pod = await runPod(env, usernsPod());
    pods.push(pod);
    const vol = mkdtempSync(join(tmpdir(), 'berth-idmap-'));
    chmodSync(vol, 0o755);
    writeFileSync(join(vol, 'f'), 'from the host\n');
    try {
      const uids = [{ hostId: HOST_UID, containerId: 0, length: SIZE }];
      const gids = [{ hostId: HOST_GID, containerId: 0, length: SIZE }];
      const script = 'stat -c %u:%g /vol/f; cat /vol/f; touch /vol/new && echo wrote; stat -c %u /plain/f';
      const { status: st, log } = await runToExit(
        env,
        pod,
        busyboxConfig(env, 'idmap', ['sh', '-c', script], {
          mounts: [
            { containerPath: '/vol', hostPath: vol, uidMappings: uids, gidMappings: gids },
            { containerPath: '/plain', hostPath: vol, readonly: true },
          ],
        }),
      );
      const out = log.map((l) => l.msg).join('\n');
      assert.equal(st.exitCode, 0, out);
      assert.deepEqual(out.split('\n'), ['0:0', 'from the host', 'wrote', '65534'], 'idmapped: root inside; the plain bind of the same dir: nobody');
      assert.equal(statSync(join(vol, 'new')).uid, 0, 'a write by the container root is host root on disk');
      assert.deepEqual(stagingMounts(env), [], 'no staging mount left on the host');
      await assert.rejects(
        createContainer(
          env,
          pod,
          busyboxConfig(env, 'idmap-bad', ['true'], {
            mounts: [{ containerPath: '/vol', hostPath: vol, uidMappings: [{ hostId: 1, containerId: 0, length: 1 }], gidMappings: gids }],
          }),
        ),
        (e: { code: number; details: string }) => e.code === 3 && e.details.includes('config.mounts[0]') && e.details.includes('mappings'),
      );
    } finally {
      rmSync(vol, { recursive: true, force: true });
    }
  },
);

test(
  'an idmapped volume maps every id, not only root: host-owned ids show as the same ids inside, a non-root container writes as its own id',
  { skip: skipRun },
  async () => {
    const pod = await runPod(env, usernsPod());
    pods.push(pod);
    const vol = mkdtempSync(join(tmpdir(), 'berth-idmap-ids-'));
    chmodSync(vol, 0o755);
    writeFileSync(join(vol, 'owned'), 'x');
    chownSync(join(vol, 'owned'), 1234, 2345);
    mkdirSync(join(vol, 'w'), { mode: 0o755 });
    chownSync(join(vol, 'w'), 1000, 1000);
    try {
      const uids = [{ hostId: HOST_UID, containerId: 0, length: SIZE }];
      const gids = [{ hostId: HOST_GID, containerId: 0, length: SIZE }];
      const script = 'id -u; stat -c %u:%g /vol/owned; touch /vol/w/new && echo wrote; stat -c %u:%g /plain/owned; exec sleep 3600';
      const id = await createContainer(
        env,
        pod,
        busyboxConfig(env, 'ids', ['sh', '-c', script], {
          linux: { securityContext: { runAsUser: { value: 1000n }, runAsGroup: { value: 1000n } } },
          mounts: [
            { containerPath: '/vol', hostPath: vol, uidMappings: uids, gidMappings: gids },
            { containerPath: '/plain', hostPath: vol, readonly: true },
          ],
        }),
      );
      await env.berthd.cri.runtime.startContainer({ containerId: id });
      const st = await waitForState(env, id, ContainerState.CONTAINER_RUNNING);
      const pid = await containerPid(env, id);
      assert.deepEqual(hostIds(pid), { uid: HOST_UID + 1000, gid: HOST_GID + 1000 }, 'container uid 1000 is host uid HOST_UID+1000');
      await until(() => logText(st.logPath).split('\n').length >= 4, 'the script printed its four lines');
      assert.deepEqual(
        logText(st.logPath).split('\n'),
        ['1000', '1234:2345', 'wrote', '65534:65534'],
        'idmapped: the host ids inside; the plain bind: unmapped (nobody)',
      );
      const made = statSync(join(vol, 'w', 'new'));
      assert.deepEqual([made.uid, made.gid], [1000, 1000], 'a write by container uid 1000 is host uid 1000 on disk');
    } finally {
      for (const p of pods.splice(pods.indexOf(pod), 1)) await p.remove();
      assert.deepEqual(stagingMounts(env), []);
      rmSync(vol, { recursive: true, force: true });
    }
  },
);

test('every mount carries the pod mappings, as kubelet sends them: a file (termination-log), a dir, a tmpfs emptyDir', { skip: skipRun }, async () => {
  const pod = await runPod(env, usernsPod());
  pods.push(pod);
  const dir = mkdtempSync(join(tmpdir(), 'berth-idmap-kubelet-'));
  chmodSync(dir, 0o755);
  const term = join(dir, 'termination-log');
  writeFileSync(term, '');
  const data = join(dir, 'data');
  mkdirSync(data, { mode: 0o755 });
  writeFileSync(join(data, 'config'), 'from the host\n');
  const mem = join(dir, 'mem');
  mkdirSync(mem);
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,mode=0777', 'berth-test-emptydir', mem], { encoding: 'utf8' });
  assert.equal(mounted.status, 0, mounted.stderr);
  try {
    const uids = [{ hostId: HOST_UID, containerId: 0, length: SIZE }];
    const gids = [{ hostId: HOST_GID, containerId: 0, length: SIZE }];
    const withMaps = (containerPath: string, hostPath: string) => ({ containerPath, hostPath, uidMappings: uids, gidMappings: gids });
    const script = 'echo bye > /dev/termination-log; stat -c %u:%g /data/config; cat /data/config; touch /cache/made && stat -c %u /cache/made';
    const { status: st, log } = await runToExit(
      env,
      pod,
      busyboxConfig(env, 'kubelet-mounts', ['sh', '-c', script], {
        mounts: [withMaps('/dev/termination-log', term), withMaps('/data', data), withMaps('/cache', mem)],
      }),
    );
    const out = log.map((l) => l.msg).join('\n');
    assert.equal(st.exitCode, 0, out);
    assert.deepEqual(out.split('\n'), ['0:0', 'from the host', '0']);
    assert.equal(readFileSync(term, 'utf8'), 'bye\n', 'the container root wrote the file mount');
    assert.equal(statSync(join(mem, 'made')).uid, 0, "a file made in the tmpfs emptyDir is host root's");
    assert.deepEqual(stagingMounts(env), [], 'no staging mount left on the host');
  } finally {
    for (const p of pods.splice(pods.indexOf(pod), 1)) await p.remove();
    spawnSync('umount', ['-l', mem]);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a userns pod on the host network (user_namespaces_host_network): host network, root inside, sysfs readable', { skip: skipRun }, async () => {
  // Without and with a pause (pid POD): the pause mounts sysfs too.
  for (const pid of [NamespaceMode.CONTAINER, NamespaceMode.POD]) {
    const pod = await runPod(env, usernsPod({ network: NamespaceMode.NODE, pid }));
    pods.push(pod);
    const { status: st, log } = await runToExit(
      env,
      pod,
      busyboxConfig(env, 'hostnet', [
        'sh',
        '-c',
        'readlink /proc/self/ns/net; id -u; ls /sys/class/net | grep -c . ; readlink /proc/self/ns/user; grep " /sys " /proc/self/mounts | head -1 | cut -d" " -f4 | cut -d, -f1',
      ]),
    );
    const out = log.map((l) => l.msg).join('\n');
    assert.equal(st.exitCode, 0, out);
    const [net, uid, links, user, sys] = out.split('\n');
    assert.equal(net, readlinkSync('/proc/self/ns/net'), 'host network');
    assert.equal(uid, '0');
    assert.ok(Number(links) >= 1, 'the host /sys is there');
    assert.notEqual(user, readlinkSync('/proc/self/ns/user'), 'own user namespace');
    assert.equal(sys, 'ro', 'the host /sys is bound read-only');
  }
});

test('a userns container on idmapped layers survives a berthd crash and restart, and is removed cleanly afterwards', { skip: skipRun }, async () => {
  const pod = await runPod(env, usernsPod());
  pods.push(pod);
  const id = await createContainer(env, pod, busyboxConfig(env, 'survivor', ['sleep', '3600']));
  await env.berthd.cri.runtime.startContainer({ containerId: id });
  await waitForState(env, id, ContainerState.CONTAINER_RUNNING);
  const pid = await containerPid(env, id);

  await env.berthd.kill9();
  await env.berthd.restart();

  assert.equal((await env.berthd.cri.runtime.containerStatus({ containerId: id })).status?.state, ContainerState.CONTAINER_RUNNING);
  assert.equal(await containerPid(env, id), pid, 'the same process');
  assert.equal(statSync(`/proc/${pid}/root/etc/passwd`).uid, HOST_UID, 'its rootfs still shows the image through the idmapped layers');
  assert.deepEqual(stagingMounts(env), []);
  // A new container of the pod after the restart gets idmapped layers again.
  const { status: st, log } = await runToExit(env, pod, busyboxConfig(env, 'after-restart', ['stat', '-c', '%u', '/etc/passwd']));
  assert.equal(st.exitCode, 0);
  assert.deepEqual(
    log.map((l) => l.msg),
    ['0'],
  );
  assert.match(env.berthd.log(), /user namespace rootfs: overlay over idmapped image layers/);

  for (const p of pods.splice(pods.indexOf(pod), 1)) await p.remove();
  assert.equal(rootfsMount(id), undefined, 'the rootfs overlay is unmounted with the container');
  assert.deepEqual(stagingMounts(env), []);
});

test(
  'berthd killed inside CreateContainer right after making the idmapped volume mounts: the next start sweeps them, the retried create works',
  { skip: skipRun, timeout: 180_000 },
  async () => {
    const faultEnv: Record<string, string> = { BERTH_FAULT: '' };
    const fe = await startCriEnv({ env: faultEnv, logLevel: 'info' });
    const vol = mkdtempSync(join(tmpdir(), 'berth-idmap-crash-'));
    chmodSync(vol, 0o755);
    writeFileSync(join(vol, 'f'), 'host file\n');
    let pod: TestPod | undefined;
    try {
      await fe.berthd.cri.image.pullImage({ image: { image: fe.busybox.ref } });
      pod = await runPod(fe, usernsPod());
      const uids = [{ hostId: HOST_UID, containerId: 0, length: SIZE }];
      const gids = [{ hostId: HOST_GID, containerId: 0, length: SIZE }];
      const config = busyboxConfig(fe, 'crashed', ['sh', '-c', 'stat -c %u /vol/f; cat /vol/f'], {
        mounts: [{ containerPath: '/vol', hostPath: vol, uidMappings: uids, gidMappings: gids }],
      });
      await restartWithFaults(fe, faultEnv, 'CreateContainer.idmap_mounts.done:kill');
      await assert.rejects(createContainer(fe, pod, config), /UNAVAILABLE|ECONNRESET|closed/);
      const dead = fe.berthd.proc;
      await until(() => dead.signalCode !== null || dead.exitCode !== null, 'berthd killed by its fault', 60_000);
      const left = stagingMounts(fe).length;
      assert.ok(left >= 1, 'the killed create left its idmapped staging mounts');
      await awaitCrashAndRecover(fe, faultEnv);
      assert.deepEqual(stagingMounts(fe), [], 'the staging mounts the killed create made are swept at start');
      assert.match(fe.berthd.log(), new RegExp(`detached leftover idmapped staging mounts.*count=${left}`));
      const { status: st, log } = await runToExit(fe, pod, config);
      assert.equal(st.exitCode, 0, log.map((l) => l.msg).join('\n'));
      assert.deepEqual(
        log.map((l) => l.msg),
        ['0', 'host file'],
        'the retried create (same name) mounts the volume idmapped',
      );
      await pod.remove();
      pod = undefined;
      assert.deepEqual(stagingMounts(fe), []);
    } finally {
      await pod?.remove().catch(() => undefined);
      await fe.cleanup();
      rmSync(vol, { recursive: true, force: true });
    }
  },
);

test('bad user namespace options are refused naming the field', { skip: !isRoot && 'needs root' }, async () => {
  const noMaps = usernsPod();
  noMaps.linux!.securityContext!.namespaceOptions!.usernsOptions!.uids = [];
  await assert.rejects(runPod(env, noMaps), /INVALID_ARGUMENT.*userns_options\.uids/);

  for (const mode of [NamespaceMode.CONTAINER, NamespaceMode.TARGET]) {
    const other = usernsPod();
    other.linux!.securityContext!.namespaceOptions!.usernsOptions!.mode = mode;
    await assert.rejects(runPod(env, other), new RegExp(`INVALID_ARGUMENT.*userns_options\\.mode: unsupported mode ${NamespaceMode[mode]}`));
  }

  const two = usernsPod();
  two.linux!.securityContext!.namespaceOptions!.usernsOptions!.uids = [
    { hostId: HOST_UID, containerId: 0, length: 1000 },
    { hostId: HOST_UID + 5000, containerId: 1000, length: 1000 },
  ];
  await assert.rejects(runPod(env, two), /INVALID_ARGUMENT.*userns_options\.uids: 2 mappings given/);

  const noRoot = usernsPod();
  noRoot.linux!.securityContext!.namespaceOptions!.usernsOptions!.gids = [{ hostId: HOST_GID, containerId: 1, length: SIZE }];
  await assert.rejects(runPod(env, noRoot), /INVALID_ARGUMENT.*userns_options\.gids\[0\]\.container_id: 1: container id 0 \(root\) is left unmapped/);

  const nodeWithMaps = usernsPod();
  nodeWithMaps.linux!.securityContext!.namespaceOptions!.usernsOptions!.mode = NamespaceMode.NODE;
  await assert.rejects(runPod(env, nodeWithMaps), /INVALID_ARGUMENT.*userns_options: mode NODE .* takes no mappings/);

  // Nothing was left behind by the refused pods: they are not listed.
  const { items } = await env.berthd.cri.runtime.listPodSandbox({});
  assert.equal(items.length, pods.length);
});

test('with userns_rootfs = "copy" the rootfs is the ownership-shifted image copy, removed with the last pod that uses it', { skip: skipRun }, async () => {
  const copyEnv = await startCriEnv({ extraToml: 'userns_rootfs = "copy"\n' });
  try {
    await copyEnv.berthd.cri.image.pullImage({ image: { image: copyEnv.busybox.ref } });
    const pod = await runPod(copyEnv, usernsPod());
    try {
      const {
        id,
        status: st,
        log,
      } = await runToExit(copyEnv, pod, busyboxConfig(copyEnv, 'copy', ['sh', '-c', 'stat -c %u:%g /etc/passwd; touch /t && echo touch=ok']));
      assert.equal(st.exitCode, 0, log.map((l) => l.msg).join('\n'));
      assert.deepEqual(
        log.map((l) => l.msg),
        ['0:0', 'touch=ok'],
      );
      assert.doesNotMatch(rootfsMount(id)?.superOptions ?? '', /\/idmap\//, 'not over idmapped layers');
      assert.equal(remaps(copyEnv).length, 1, 'one remapped copy for (busybox, the pod mapping)');
      assert.match(copyEnv.berthd.log(), /user namespace rootfs: ownership-shifted image copy.*userns_rootfs = \\?"copy\\?" in the config/);
    } finally {
      await pod.remove();
    }
    assert.deepEqual(remaps(copyEnv), [], 'the copy went with the last pod');
  } finally {
    await copyEnv.cleanup();
  }
});

test('where the snapshotter cannot give idmapped layers (native), auto mode logs why and uses the copy', { skip: skipRun }, async () => {
  const nativeEnv = await startCriEnv({ extraToml: 'snapshotter = "native"\n' });
  try {
    await nativeEnv.berthd.cri.image.pullImage({ image: { image: nativeEnv.busybox.ref } });
    const pod = await runPod(nativeEnv, usernsPod());
    try {
      const { status: st, log } = await runToExit(nativeEnv, pod, busyboxConfig(nativeEnv, 'native', ['sh', '-c', 'stat -c %u:%g /etc/passwd; id -u']));
      assert.equal(st.exitCode, 0, log.map((l) => l.msg).join('\n'));
      assert.deepEqual(
        log.map((l) => l.msg),
        ['0:0', '0'],
      );
    } finally {
      await pod.remove();
    }
    assert.match(nativeEnv.berthd.log(), /user namespace rootfs: ownership-shifted image copy.*the snapshotter is not overlayfs/);
  } finally {
    await nativeEnv.cleanup();
  }
});

test(
  'where user namespaces cannot work, a userns pod fails with a clear error and leaves nothing',
  { skip: canRun || !isRoot ? 'user namespaces work here (or not root)' : false },
  async () => {
    const before = (await env.berthd.cri.runtime.listPodSandbox({})).items.length;
    let err: unknown;
    try {
      const pod = await runPod(env, usernsPod());
      pods.push(pod);
      // The sandbox may come up without a process (no pause when pid is per container): the
      // first container is then what the kernel refuses.
      await runToExit(env, pod, busyboxConfig(env, 'probe', ['true']));
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof Error, 'a userns pod cannot run here');
    if ((statSync('/').mode & 0o001) === 0) {
      // berth names the directory rather than leaving the operator with runc's EACCES.
      assert.match(err.message, /FAILED_PRECONDITION.*userns_options: \/ is mode 0\d{3}, not searchable by others/);
    } else {
      assert.match(err.message, /permission denied/i);
    }
    for (const p of pods.splice(0)) await p.remove();
    assert.equal((await env.berthd.cri.runtime.listPodSandbox({})).items.length, before);
    // The netns dir itself is a (shared) bind mount; nothing may be mounted below it or elsewhere
    // under the state dir (netns, pinned namespaces, /dev/shm, rootfs).
    const left = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4] ?? '')
      .filter((m) => m.startsWith(`${env.berthd.state}/`) && m !== `${env.berthd.state}/netns`);
    assert.deepEqual(left, []);
  },
);
