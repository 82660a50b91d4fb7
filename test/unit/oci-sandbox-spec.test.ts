import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { NamespaceMode, PodSandboxConfigSchema, SecurityProfile_ProfileType } from '../../src/api/cri/runtime/v1/api_pb.js';
import { isBerthError } from '../../src/errors.js';
import { DEFAULT_CAPABILITIES } from '../../src/oci/capabilities.js';
import { DEFAULT_MASKED_PATHS } from '../../src/oci/defaults.js';
import { sandboxSpec, type SandboxSpecInput } from '../../src/oci/sandbox-spec.js';
import type { Spec } from '../../src/oci/spec.js';

type SandboxInit = MessageInitShape<typeof PodSandboxConfigSchema>;

const PAUSE = { Entrypoint: ['/pause'], User: '65535:65535', Env: ['PATH=/bin'] };

function build(init: SandboxInit = {}, input: Partial<SandboxSpecInput> = {}): Spec {
  return sandboxSpec({
    id: 'sb1',
    config: create(PodSandboxConfigSchema, {
      metadata: { name: 'pod', namespace: 'default', uid: 'u-1' },
      hostname: 'pod-host',
      logDirectory: '/var/log/pods/x',
      ...init,
      linux: { cgroupParent: '/kubepods/podu-1', ...init.linux },
    } as SandboxInit),
    image: PAUSE,
    rootfsPath: '/run/berth/sb1/rootfs',
    shmPath: '/run/berth/sb1/shm',
    resolvConfPath: '/var/lib/berth/sb1/resolv.conf',
    netnsPath: '/var/run/netns/cni-1',
    ...input,
  });
}

test('pause container: image command, read-only root, hostname, new namespaces with the pod netns', () => {
  const s = build();
  assert.deepEqual(s.process!.args, ['/pause']);
  assert.deepEqual(s.process!.user, { uid: 65535, gid: 65535, additionalGids: [65535] });
  assert.deepEqual(s.process!.env, ['PATH=/bin']);
  assert.equal(s.process!.oomScoreAdj, -998);
  assert.equal(s.process!.noNewPrivileges, true);
  assert.deepEqual(s.process!.capabilities!.bounding, [...DEFAULT_CAPABILITIES]);
  assert.deepEqual(s.root, { path: '/run/berth/sb1/rootfs', readonly: true });
  assert.equal(s.hostname, 'pod-host');
  assert.deepEqual(s.linux!.namespaces, [
    { type: 'pid' },
    { type: 'ipc' },
    { type: 'uts' },
    { type: 'network', path: '/var/run/netns/cni-1' },
    { type: 'mount' },
  ]);
  assert.deepEqual(s.linux!.resources!.cpu, { shares: 2 });
  assert.equal(s.linux!.cgroupsPath, '/kubepods/podu-1/sb1');
  assert.deepEqual(s.linux!.maskedPaths, [...DEFAULT_MASKED_PATHS]);
  assert.deepEqual(
    s.mounts!.find((m) => m.destination === '/dev/shm'),
    { destination: '/dev/shm', type: 'bind', source: '/run/berth/sb1/shm', options: ['rbind', 'ro', 'nosuid', 'nodev', 'noexec'] },
  );
  assert.equal(s.mounts!.filter((m) => m.destination === '/dev/shm').length, 1);
  assert.equal(s.mounts!.find((m) => m.destination === '/etc/resolv.conf')?.source, '/var/lib/berth/sb1/resolv.conf');
  assert.deepEqual(s.annotations, {
    'io.kubernetes.cri.container-type': 'sandbox',
    'io.kubernetes.cri.sandbox-id': 'sb1',
    'io.kubernetes.cri.sandbox-namespace': 'default',
    'io.kubernetes.cri.sandbox-uid': 'u-1',
    'io.kubernetes.cri.sandbox-name': 'pod',
    'io.kubernetes.cri.sandbox-log-directory': '/var/log/pods/x',
  });
});

test('host network, pid and ipc drop those namespaces, the hostname and use the host /dev/shm', () => {
  const s = build({ linux: { securityContext: { namespaceOptions: { network: NamespaceMode.NODE, pid: NamespaceMode.NODE, ipc: NamespaceMode.NODE } } } });
  assert.deepEqual(s.linux!.namespaces, [{ type: 'mount' }]);
  assert.equal(s.hostname, undefined);
  assert.equal(s.mounts!.find((m) => m.destination === '/dev/shm')?.source, '/dev/shm');
});

test('oom_score_adj -998 is raised to the daemon value when restricted', () => {
  assert.equal(build({}, { options: { restrictOomScoreAdj: -500 } }).process!.oomScoreAdj, -500);
  assert.equal(build({}, { options: { restrictOomScoreAdj: -999 } }).process!.oomScoreAdj, -998);
});

test('sysctls: allowlisted ones pass as a map, others are rejected naming the sysctl', () => {
  const s = build({ linux: { sysctls: { 'net.ipv4.ip_unprivileged_port_start': '0', 'kernel.shm_rmid_forced': '1+kernel.core_pattern=x' } } });
  assert.deepEqual(s.linux!.sysctl, { 'net.ipv4.ip_unprivileged_port_start': '0', 'kernel.shm_rmid_forced': '1+kernel.core_pattern=x' });
  assert.throws(
    () => build({ linux: { sysctls: { 'kernel.core_pattern': '|/x' } } }),
    (e) => isBerthError(e, 'InvalidArgument') && e.message.includes('kernel.core_pattern'),
  );
  assert.throws(
    () => build({ linux: { sysctls: { 'net.core.somaxconn': '1024' }, securityContext: { namespaceOptions: { network: NamespaceMode.NODE } } } }),
    (e) => isBerthError(e, 'InvalidArgument') && e.message.includes('net.core.somaxconn'),
  );
});

test('run_as_user / run_as_group override the image user; supplemental groups follow', () => {
  const s = build({ linux: { securityContext: { runAsUser: { value: 2147483649n }, runAsGroup: { value: 7n }, supplementalGroups: [8n, 7n] } } });
  assert.deepEqual(s.process!.user, { uid: 2147483649, gid: 7, additionalGids: [7, 8] });
});

test('seccomp RuntimeDefault applies to the pause container; privileged sandboxes get none', () => {
  const rd = { seccomp: { profileType: SecurityProfile_ProfileType.RuntimeDefault } };
  assert.equal(build({ linux: { securityContext: rd } }).linux!.seccomp!.defaultAction, 'SCMP_ACT_ERRNO');
  assert.equal(build({ linux: { securityContext: { ...rd, privileged: true } } }).linux!.seccomp, undefined);
});

test('pod user namespace: a new user namespace with the mappings', () => {
  const m = [{ hostId: 100000, containerId: 0, length: 65536 }];
  const s = build({ linux: { securityContext: { namespaceOptions: { usernsOptions: { mode: NamespaceMode.POD, uids: m, gids: m } } } } });
  assert.deepEqual(s.linux!.namespaces!.at(-1), { type: 'user' });
  assert.deepEqual(s.linux!.gidMappings, [{ containerID: 0, hostID: 100000, size: 65536 }]);
});

test('a pause image without a command and a bad cgroup parent are InvalidArgument', () => {
  assert.throws(
    () => build({}, { image: {} }),
    (e) => isBerthError(e, 'InvalidArgument') && /Entrypoint/.test(e.message),
  );
  assert.throws(
    () => build({ linux: { cgroupParent: 'relative/path' } }),
    (e) => isBerthError(e, 'InvalidArgument') && /cgroup_parent/.test(e.message),
  );
});
