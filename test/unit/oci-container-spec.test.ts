import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import {
  ContainerConfigSchema,
  NamespaceMode,
  PodSandboxConfigSchema,
  SecurityProfile_ProfileType,
  SupplementalGroupsPolicy,
} from '../../src/api/cri/runtime/v1/api_pb.js';
import { isBerthError } from '../../src/errors.js';
import { ALL_CAPABILITIES, DEFAULT_CAPABILITIES } from '../../src/oci/capabilities.js';
import { containerSpec, type ContainerSpecInput } from '../../src/oci/container-spec.js';
import { DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS } from '../../src/oci/defaults.js';
import { loadUserDb } from '../../src/oci/passwd.js';
import type { ImageConfig, Spec } from '../../src/oci/spec.js';

type ContainerInit = MessageInitShape<typeof ContainerConfigSchema>;
type SandboxInit = MessageInitShape<typeof PodSandboxConfigSchema>;
type SecurityInit = NonNullable<NonNullable<ContainerInit['linux']>['securityContext']>;

const USERS = loadUserDb(
  'root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nbig:x:3000000000:3000000000::/:/bin/sh\n',
  'root:x:0:\nwheel:x:10:root,app\napp:x:1000:app\naudio:x:29:app\nbig:x:3000000000:\n',
);

function build(
  opts: { container?: ContainerInit; sc?: SecurityInit; sandbox?: SandboxInit; image?: ImageConfig; input?: Partial<ContainerSpecInput> } = {},
): Spec {
  const config = create(ContainerConfigSchema, {
    metadata: { name: 'app' },
    ...opts.container,
    linux: { ...opts.container?.linux, securityContext: { ...opts.container?.linux?.securityContext, ...opts.sc } } as ContainerInit['linux'],
  } as ContainerInit);
  const sandboxConfig = create(PodSandboxConfigSchema, {
    metadata: { name: 'pod', namespace: 'ns', uid: 'uid-1' },
    hostname: 'pod-host',
    linux: { cgroupParent: '/kubepods/pod-uid-1' },
    ...opts.sandbox,
  } as SandboxInit);
  return containerSpec({
    id: 'c1',
    sandboxId: 's1',
    config,
    sandboxConfig,
    image: opts.image ?? { Entrypoint: ['/bin/app'], Cmd: ['--serve'], Env: ['PATH=/bin', 'IMG=1'], WorkingDir: '/srv' },
    imageName: 'example.test/app:1',
    rootfsPath: 'rootfs',
    sandboxPid: 4242,
    sandboxFiles: { hostnamePath: '/sb/hostname', hostsPath: '/sb/hosts', resolvConfPath: '/sb/resolv.conf', shmPath: '/sb/shm' },
    userDb: USERS,
    ...opts.input,
  });
}

const privilegedSandbox: SandboxInit = { metadata: { name: 'pod' }, linux: { securityContext: { privileged: true } } };

test('a default container joins the pod, runs the image entrypoint as root with default caps and masked paths', () => {
  const s = build();
  assert.deepEqual(s.process!.args, ['/bin/app', '--serve']);
  assert.deepEqual(s.process!.env, ['PATH=/bin', 'HOSTNAME=pod-host', 'IMG=1']);
  assert.equal(s.process!.cwd, '/srv');
  assert.deepEqual(s.process!.user, { uid: 0, gid: 0, additionalGids: [0, 10] });
  assert.deepEqual(s.process!.capabilities!.bounding, [...DEFAULT_CAPABILITIES]);
  assert.equal(s.process!.noNewPrivileges, false);
  assert.deepEqual(s.root, { path: 'rootfs', readonly: false });
  assert.deepEqual(s.linux!.maskedPaths, [...DEFAULT_MASKED_PATHS]);
  assert.ok(s.linux!.maskedPaths!.includes('/sys/devices/virtual/powercap'), 'RAPL energy counters are masked');
  assert.deepEqual(s.linux!.readonlyPaths, [...DEFAULT_READONLY_PATHS]);
  assert.deepEqual(s.linux!.namespaces, [
    { type: 'mount' },
    { type: 'network', path: '/proc/4242/ns/net' },
    { type: 'uts', path: '/proc/4242/ns/uts' },
    { type: 'ipc', path: '/proc/4242/ns/ipc' },
    { type: 'pid', path: '/proc/4242/ns/pid' },
  ]);
  assert.equal(s.linux!.cgroupsPath, '/kubepods/pod-uid-1/c1');
  assert.equal(s.linux!.seccomp, undefined);
  assert.equal(s.linux!.resources!.devices![0]!.allow, false);
  assert.deepEqual(s.annotations, {
    'io.kubernetes.cri.container-type': 'container',
    'io.kubernetes.cri.sandbox-id': 's1',
    'io.kubernetes.cri.sandbox-namespace': 'ns',
    'io.kubernetes.cri.sandbox-uid': 'uid-1',
    'io.kubernetes.cri.sandbox-name': 'pod',
    'io.kubernetes.cri.container-name': 'app',
    'io.kubernetes.cri.image-name': 'example.test/app:1',
  });
  assert.doesNotThrow(() => JSON.stringify(s));
});

test('each container gets its own deep copy of the image config values', () => {
  const image: ImageConfig = { Entrypoint: ['/bin/app'], Env: ['A=1'] };
  const snapshot = structuredClone(image);
  const one = build({ image, container: { metadata: { name: 'one' }, envs: [{ key: 'SECRET', value: new TextEncoder().encode('x') }] } });
  const two = build({ image, container: { metadata: { name: 'two' } } });
  one.process!.env!.push('LEAK=1');
  one.process!.args.push('leak');
  assert.deepEqual(image, snapshot);
  assert.ok(!two.process!.env!.some((e) => e.startsWith('SECRET=') || e.startsWith('LEAK=')));
  assert.deepEqual(two.process!.args, ['/bin/app']);
  assert.notEqual(one.mounts, two.mounts);
  assert.notEqual(one.linux!.maskedPaths, two.linux!.maskedPaths);
});

test('capabilities: drop ALL + add, and add ALL + drop', () => {
  const a = build({ sc: { capabilities: { addCapabilities: ['NET_ADMIN'], dropCapabilities: ['ALL'] } } });
  assert.deepEqual(a.process!.capabilities, { bounding: ['CAP_NET_ADMIN'], effective: ['CAP_NET_ADMIN'], permitted: ['CAP_NET_ADMIN'] });
  const b = build({ sc: { capabilities: { addCapabilities: ['ALL'], dropCapabilities: ['SYS_ADMIN'] } } });
  assert.equal(b.process!.capabilities!.bounding!.length, ALL_CAPABILITIES.length - 1);
  assert.ok(!b.process!.capabilities!.bounding!.includes('CAP_SYS_ADMIN'));
});

test('privileged: all caps, no masked or read-only paths, no seccomp, writable sysfs, all devices', () => {
  const hostDevices = [{ path: '/dev/kvm', type: 'c' as const, major: 10, minor: 232, fileMode: 0o660, uid: 0, gid: 0 }];
  const s = build({
    sandbox: privilegedSandbox,
    sc: { privileged: true, seccomp: { profileType: SecurityProfile_ProfileType.RuntimeDefault }, maskedPaths: ['/proc/x'] },
    input: { options: { hostDevices } },
  });
  assert.deepEqual(s.process!.capabilities!.bounding, [...ALL_CAPABILITIES]);
  assert.deepEqual(s.linux!.maskedPaths, []);
  assert.deepEqual(s.linux!.readonlyPaths, []);
  assert.equal(s.linux!.seccomp, undefined);
  assert.ok(s.mounts!.find((m) => m.destination === '/sys')!.options!.includes('rw'));
  assert.deepEqual(s.linux!.resources!.devices, [{ allow: true, access: 'rwm' }]);
  assert.deepEqual(s.linux!.devices, hostDevices);
  assert.notEqual(s.linux!.devices![0], hostDevices[0]);
});

test('privileged container in an unprivileged sandbox is rejected', () => {
  assert.throws(
    () => build({ sc: { privileged: true } }),
    (e) => isBerthError(e, 'InvalidArgument') && e.message.includes('linux.security_context.privileged'),
  );
});

test('masked and read-only paths from the config replace the defaults', () => {
  const s = build({ sc: { maskedPaths: ['/proc/kcore'], readonlyPaths: ['/proc/sys'] } });
  assert.deepEqual(s.linux!.maskedPaths, ['/proc/kcore']);
  assert.deepEqual(s.linux!.readonlyPaths, ['/proc/sys']);
  assert.throws(
    () => build({ sc: { maskedPaths: ['proc'] } }),
    (e) => isBerthError(e, 'InvalidArgument') && /masked_paths\[0\]/.test(e.message),
  );
});

test('user resolution: run_as_user, run_as_username, run_as_group and the image User', () => {
  assert.deepEqual(build({ sc: { runAsUser: { value: 1000n } } }).process!.user, { uid: 1000, gid: 1000, additionalGids: [1000, 10, 29] });
  assert.deepEqual(build({ sc: { runAsUser: { value: 3000000000n } } }).process!.user, { uid: 3000000000, gid: 3000000000, additionalGids: [3000000000] });
  assert.deepEqual(build({ sc: { runAsUsername: 'app', runAsGroup: { value: 5n } } }).process!.user, { uid: 1000, gid: 5, additionalGids: [5, 10, 29] });
  assert.deepEqual(build({ sc: { runAsUser: { value: 7n } } }).process!.user, { uid: 7, gid: 0, additionalGids: [0] });
  const img = build({ image: { Entrypoint: ['/x'], User: 'app:wheel' } }).process!.user;
  assert.deepEqual(img, { uid: 1000, gid: 10, additionalGids: [10, 29] });
});

test('supplemental groups: primary, then image groups, then requested, deduplicated in that order', () => {
  const u = build({ sc: { runAsUser: { value: 1000n }, supplementalGroups: [29n, 500n, 10n, 501n] } }).process!.user;
  assert.deepEqual(u.additionalGids, [1000, 10, 29, 500, 501]);
  const strict = build({ sc: { runAsUser: { value: 1000n }, supplementalGroups: [500n], supplementalGroupsPolicy: SupplementalGroupsPolicy.Strict } }).process!
    .user;
  assert.deepEqual(strict.additionalGids, [1000, 500]);
});

test('invalid user settings are InvalidArgument naming the field', () => {
  const cases: Array<[SecurityInit, string]> = [
    [{ runAsUser: { value: -1n } }, 'linux.security_context.run_as_user.value'],
    [{ runAsUser: { value: 4294967295n } }, 'linux.security_context.run_as_user.value'],
    [{ runAsUser: { value: 1n << 40n } }, 'linux.security_context.run_as_user.value'],
    [{ runAsGroup: { value: 5n } }, 'linux.security_context.run_as_group'],
    [{ runAsUsername: 'ghost' }, 'linux.security_context.run_as_username'],
    [{ runAsUser: { value: 1n }, supplementalGroups: [-3n] }, 'linux.security_context.supplemental_groups[0]'],
  ];
  for (const [sc, field] of cases) {
    assert.throws(
      () => build({ sc }),
      (e) => isBerthError(e, 'InvalidArgument') && e.message.startsWith(`container config: ${field}`),
      field,
    );
  }
});

test('namespace modes: CONTAINER pid is new, NODE omits, TARGET joins the target pid', () => {
  const s = build({ sc: { namespaceOptions: { pid: NamespaceMode.CONTAINER, network: NamespaceMode.NODE, ipc: NamespaceMode.NODE } } });
  assert.deepEqual(s.linux!.namespaces, [{ type: 'mount' }, { type: 'pid' }]);
  const hostPid = build({ sc: { namespaceOptions: { pid: NamespaceMode.NODE } } });
  assert.ok(!hostPid.linux!.namespaces!.some((n) => n.type === 'pid'));
  const t = build({ sc: { namespaceOptions: { pid: NamespaceMode.TARGET, targetId: 'c0' } }, input: { targetPid: 777 } });
  assert.deepEqual(
    t.linux!.namespaces!.find((n) => n.type === 'pid'),
    { type: 'pid', path: '/proc/777/ns/pid' },
  );
  assert.throws(
    () => build({ sc: { namespaceOptions: { pid: NamespaceMode.TARGET, targetId: 'c0' } } }),
    (e) => isBerthError(e, 'InvalidArgument') && /target_id/.test(e.message),
  );
  assert.throws(
    () => build({ sc: { namespaceOptions: { network: NamespaceMode.TARGET } } }),
    (e) => isBerthError(e, 'InvalidArgument') && /namespace_options.network/.test(e.message),
  );
});

test('pod user namespace: joins the sandbox user namespace with the mappings', () => {
  const s = build({
    sc: {
      namespaceOptions: {
        usernsOptions: {
          mode: NamespaceMode.POD,
          uids: [{ hostId: 65536, containerId: 0, length: 65536 }],
          gids: [{ hostId: 65536, containerId: 0, length: 65536 }],
        },
      },
    },
  });
  assert.deepEqual(s.linux!.namespaces!.at(-1), { type: 'user', path: '/proc/4242/ns/user' });
  assert.deepEqual(s.linux!.uidMappings, [{ containerID: 0, hostID: 65536, size: 65536 }]);
  assert.throws(
    () =>
      build({ sc: { namespaceOptions: { usernsOptions: { mode: NamespaceMode.POD, uids: [{ hostId: 4294967295, containerId: 0, length: 2 }], gids: [] } } } }),
    (e) => isBerthError(e, 'InvalidArgument') && /userns_options/.test(e.message),
  );
});

test('oom_score_adj is clamped to the daemon value when restricted', () => {
  const r = (adj: bigint, restrict?: number) =>
    build({ container: { linux: { resources: { oomScoreAdj: adj } } }, input: { options: { restrictOomScoreAdj: restrict } } }).process!.oomScoreAdj;
  assert.equal(r(-500n), -500);
  assert.equal(r(-500n, 0), 0);
  assert.equal(r(500n, 0), 500);
  assert.throws(
    () => r(-1001n),
    (e) => isBerthError(e, 'InvalidArgument') && /oom_score_adj/.test(e.message),
  );
});

test('resources: cpu, memory with swap equal to memory, hugepages, unified, pids', () => {
  const s = build({
    container: {
      linux: {
        resources: {
          cpuPeriod: 100000n,
          cpuQuota: 50000n,
          cpuShares: 512n,
          memoryLimitInBytes: 1n << 30n,
          cpusetCpus: '0-1',
          hugepageLimits: [{ pageSize: '2MB', limit: 4194304n }],
          unified: { 'memory.high': '1G' },
        },
      },
    },
    input: { options: { swapControllerAvailable: true, pidsLimit: 100 } },
  });
  const r = s.linux!.resources!;
  assert.deepEqual(r.cpu, { period: 100000, quota: 50000, shares: 512, cpus: '0-1' });
  assert.deepEqual(r.memory, { limit: 1073741824, swap: 1073741824 });
  assert.deepEqual(r.hugepageLimits, [{ pageSize: '2MB', limit: 4194304 }]);
  assert.deepEqual(r.unified, { 'memory.high': '1G' });
  assert.deepEqual(r.pids, { limit: 100 });
  assert.throws(
    () => build({ container: { linux: { resources: { unified: { '../x': '1' } } } } }),
    (e) => isBerthError(e, 'InvalidArgument') && /unified/.test(e.message),
  );
  assert.throws(
    () => build({ container: { linux: { resources: { cpusetCpus: '0;1' } } } }),
    (e) => isBerthError(e, 'InvalidArgument') && /cpuset_cpus/.test(e.message),
  );
});

test('devices: stat through the callback, with permissions and an allow rule', () => {
  const s = build({
    container: { devices: [{ hostPath: '/dev/fuse', containerPath: '/dev/fuse', permissions: 'rw' }] },
    input: { statDevice: (p) => (p === '/dev/fuse' ? { type: 'c', major: 10, minor: 229, mode: 0o20666, uid: 0, gid: 0 } : undefined) },
  });
  assert.deepEqual(s.linux!.devices, [{ path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o666, uid: 0, gid: 0 }]);
  assert.deepEqual(s.linux!.resources!.devices!.at(-1), { allow: true, type: 'c', major: 10, minor: 229, access: 'rw' });
  const stat = () => undefined;
  assert.throws(
    () => build({ container: { devices: [{ hostPath: '/dev/nope', permissions: 'rw' }] }, input: { statDevice: stat } }),
    (e) => isBerthError(e, 'InvalidArgument') && /devices\[0\]/.test(e.message),
  );
  assert.throws(
    () => build({ container: { devices: [{ hostPath: '/dev/fuse', permissions: 'rwx' }] }, input: { statDevice: stat } }),
    (e) => isBerthError(e, 'InvalidArgument') && /permissions/.test(e.message),
  );
});

test('seccomp RuntimeDefault follows the final capability set; Localhost uses the supplied profile', () => {
  const s = build({ sc: { seccomp: { profileType: SecurityProfile_ProfileType.RuntimeDefault }, capabilities: { addCapabilities: ['SYS_ADMIN'] } } });
  assert.ok(s.linux!.seccomp!.syscalls!.some((c) => c.names.includes('mount') && c.action === 'SCMP_ACT_ALLOW'));
  const l = build({
    sc: { seccomp: { profileType: SecurityProfile_ProfileType.Localhost, localhostRef: '/profiles/p.json' } },
    input: { localhostSeccompProfile: { defaultAction: 'SCMP_ACT_LOG' } },
  });
  assert.deepEqual(l.linux!.seccomp, { defaultAction: 'SCMP_ACT_LOG' });
  const path = build({ sc: { seccompProfilePath: 'runtime/default' } });
  assert.equal(path.linux!.seccomp!.defaultAction, 'SCMP_ACT_ERRNO');
});

test('readonly rootfs, no_new_privs, tty and working dir from the config', () => {
  const s = build({ sc: { readonlyRootfs: true, noNewPrivs: true }, container: { tty: true, workingDir: '/work' } });
  assert.equal(s.root!.readonly, true);
  assert.equal(s.process!.noNewPrivileges, true);
  assert.equal(s.process!.terminal, true);
  assert.equal(s.process!.cwd, '/work');
  assert.ok(s.mounts!.find((m) => m.destination === '/etc/hosts')!.options!.includes('ro'));
});

test("annotations: only those the handler allows pass; never runc's systemd properties or berth keys by default", () => {
  const given = {
    team: 'a',
    'run.oci.keep_original_groups': '1',
    'org.systemd.property.DeviceAllow': "'char-* rwm'",
    'io.kubernetes.cri.container-type': 'sandbox',
  };
  const s = build({ container: { annotations: given } });
  assert.equal(s.annotations!['team'], undefined);
  assert.equal(s.annotations!['run.oci.keep_original_groups'], undefined);
  assert.equal(s.annotations!['org.systemd.property.DeviceAllow'], undefined);
  assert.equal(s.annotations!['io.kubernetes.cri.container-type'], 'container');
  const allowed = build({
    container: { annotations: { ...given, 'run.oci.x': '1' } },
    input: { options: { allowedContainerAnnotations: ['run.oci.*', 'team', 'io.kubernetes.cri.*'] } },
  });
  assert.equal(allowed.annotations!['run.oci.x'], '1');
  assert.equal(allowed.annotations!['team'], 'a');
  assert.equal(allowed.annotations!['org.systemd.property.DeviceAllow'], undefined);
  assert.equal(allowed.annotations!['io.kubernetes.cri.container-type'], 'container', "berth keys are berth's");
});

test('systemd cgroup parents use the slice:prefix:name form', () => {
  const s = build({ sandbox: { metadata: { name: 'pod' }, linux: { cgroupParent: 'kubepods-burstable-podx.slice' } } });
  assert.equal(s.linux!.cgroupsPath, 'kubepods-burstable-podx.slice:berth:c1');
  assert.throws(
    () => build({ sandbox: { metadata: { name: 'pod' }, linux: { cgroupParent: '/kubepods/../../etc' } } }),
    (e) => isBerthError(e, 'InvalidArgument') && /cgroup_parent/.test(e.message),
  );
});

test('missing metadata name is InvalidArgument', () => {
  assert.throws(
    () => build({ container: { metadata: { name: '' } } }),
    (e) => isBerthError(e, 'InvalidArgument') && /metadata.name/.test(e.message),
  );
});

test('procMount as kubelet sends it: empty masked/readonly lists mean none in a pod user namespace, the defaults outside one', () => {
  const userns = {
    mode: NamespaceMode.POD,
    uids: [{ hostId: 65536, containerId: 0, length: 65536 }],
    gids: [{ hostId: 65536, containerId: 0, length: 65536 }],
  };
  const unmasked = build({ sc: { namespaceOptions: { usernsOptions: userns }, maskedPaths: [], readonlyPaths: [] } });
  assert.deepEqual(unmasked.linux!.maskedPaths, []);
  assert.deepEqual(unmasked.linux!.readonlyPaths, []);
  const dflt = build({
    sc: { namespaceOptions: { usernsOptions: userns }, maskedPaths: [...DEFAULT_MASKED_PATHS], readonlyPaths: [...DEFAULT_READONLY_PATHS] },
  });
  assert.deepEqual(dflt.linux!.maskedPaths, [...DEFAULT_MASKED_PATHS]);
  const hostUsers = build({ sc: { maskedPaths: [], readonlyPaths: [] } });
  assert.deepEqual(hostUsers.linux!.maskedPaths, [...DEFAULT_MASKED_PATHS]);
  assert.deepEqual(hostUsers.linux!.readonlyPaths, [...DEFAULT_READONLY_PATHS]);
});
