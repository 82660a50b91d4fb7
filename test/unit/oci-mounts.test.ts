import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { ImageSpecSchema, MountPropagation, MountSchema, type Mount as CriMount } from '../../src/api/cri/runtime/v1/api_pb.js';
import { isBerthError } from '../../src/errors.js';
import { bindSysfsForHostNetworkUserns, imageVolumeMounts, planMounts, sandboxFileMounts } from '../../src/oci/mounts.js';

const m = (containerPath: string, hostPath: string, extra: Partial<CriMount> = {}) =>
  create(MountSchema, { containerPath, hostPath, ...extra } as MessageInitShape<typeof MountSchema>);
const files = { hostnamePath: '/sb/hostname', hostsPath: '/sb/hosts', resolvConfPath: '/sb/resolv.conf', shmPath: '/sb/shm' };
const plan = (criMounts: CriMount[], privileged = false) =>
  planMounts({ criMounts, extraMounts: sandboxFileMounts(files, criMounts, false, false), privileged, field: 'container config: mounts' });

test('propagation modes map to rprivate / rslave / rshared and set rootfs propagation', () => {
  const p = plan([
    m('/a', '/h/a', { propagation: MountPropagation.PROPAGATION_PRIVATE }),
    m('/b', '/h/b', { propagation: MountPropagation.PROPAGATION_HOST_TO_CONTAINER, readonly: true }),
  ]);
  assert.deepEqual(
    p.mounts.find((x) => x.destination === '/a'),
    { destination: '/a', type: 'bind', source: '/h/a', options: ['rbind', 'rprivate', 'rw'] },
  );
  assert.deepEqual(p.mounts.find((x) => x.destination === '/b')?.options, ['rbind', 'rslave', 'ro']);
  assert.equal(p.rootfsPropagation, 'rslave');
  const shared = plan([
    m('/c', '/h/c', { propagation: MountPropagation.PROPAGATION_BIDIRECTIONAL }),
    m('/d', '/h/d', { propagation: MountPropagation.PROPAGATION_HOST_TO_CONTAINER }),
  ]);
  assert.deepEqual(shared.mounts.find((x) => x.destination === '/c')?.options, ['rbind', 'rshared', 'rw']);
  assert.equal(shared.rootfsPropagation, 'rshared');
  assert.equal(plan([m('/a', '/h/a')]).rootfsPropagation, undefined);
});

test('propagation lookup rejects a bidirectional mount from a private host mount', () => {
  assert.throws(
    () =>
      planMounts({
        criMounts: [m('/c', '/h/c', { propagation: MountPropagation.PROPAGATION_BIDIRECTIONAL })],
        extraMounts: [],
        privileged: false,
        lookupPropagation: () => 'slave',
        field: 'f',
      }),
    (e) => isBerthError(e, 'InvalidArgument') && /shared/.test(e.message),
  );
});

test('sandbox files are mounted unless the config mounts the same path', () => {
  const p = plan([m('/etc/hosts/', '/mine/hosts')]);
  const hosts = p.mounts.filter((x) => x.destination === '/etc/hosts');
  assert.equal(hosts.length, 1);
  assert.equal(hosts[0]!.source, '/mine/hosts');
  assert.equal(p.mounts.find((x) => x.destination === '/etc/resolv.conf')?.source, '/sb/resolv.conf');
  assert.equal(p.mounts.find((x) => x.destination === '/etc/hostname')?.source, '/sb/hostname');
  // The pod's /dev/shm replaces the default tmpfs.
  const shm = p.mounts.filter((x) => x.destination === '/dev/shm');
  assert.deepEqual(shm, [{ destination: '/dev/shm', type: 'bind', source: '/sb/shm', options: ['rbind', 'rprivate', 'rw'] }]);
});

test('sandbox files are read-only with a read-only rootfs; host IPC uses the host /dev/shm', () => {
  const binds = sandboxFileMounts(files, [], true, true);
  assert.equal(binds.find((b) => b.containerPath === '/etc/hosts')?.readonly, true);
  assert.deepEqual(
    binds.find((b) => b.containerPath === '/dev/shm'),
    { containerPath: '/dev/shm', hostPath: '/dev/shm', readonly: false, propagation: MountPropagation.PROPAGATION_PRIVATE },
  );
  assert.equal(
    sandboxFileMounts({ ...files, hostnamePath: undefined }, [], false, false).some((b) => b.containerPath === '/etc/hostname'),
    false,
  );
});

test('defaults: kernel filesystems, read-only sysfs and cgroup; writable when privileged', () => {
  const p = plan([]);
  assert.deepEqual(
    p.mounts.slice(0, 7).map((x) => x.destination),
    ['/proc', '/dev', '/dev/pts', '/dev/mqueue', '/sys', '/sys/fs/cgroup', '/etc/hostname'],
  );
  assert.ok(p.mounts.find((x) => x.destination === '/sys')!.options!.includes('ro'));
  assert.ok(p.mounts.find((x) => x.destination === '/sys/fs/cgroup')!.options!.includes('ro'));
  const priv = plan([], true);
  assert.ok(priv.mounts.find((x) => x.destination === '/sys')!.options!.includes('rw'));
  assert.ok(!priv.mounts.find((x) => x.destination === '/sys/fs/cgroup')!.options!.includes('ro'));
  assert.ok(!p.mounts.some((x) => x.destination === '/run'));
});

test('a /dev bind drops every default mount under /dev', () => {
  const p = plan([m('/dev', '/h/dev')]);
  assert.deepEqual(
    p.mounts.filter((x) => x.destination.startsWith('/dev')).map((x) => x.type),
    ['bind', 'bind'],
  );
});

test('binds are ordered by depth so parents are mounted first', () => {
  const p = plan([m('/a/b/c', '/h/1'), m('/a', '/h/2'), m('/a/b', '/h/3')]);
  const order = p.mounts.filter((x) => x.destination.startsWith('/a')).map((x) => x.destination);
  assert.deepEqual(order, ['/a', '/a/b', '/a/b/c']);
});

test('invalid mounts are InvalidArgument naming the mount', () => {
  const bad: CriMount[] = [
    m('relative', '/h'),
    m('/x', 'relative'),
    m('/x', ''),
    m('/x', '/h', { propagation: 7 as MountPropagation }),
    m('/x', '/h', { recursiveReadOnly: true }),
    m('/x', '/h', { uidMappings: [{ hostId: 1, containerId: 0, length: 1 } as CriMount['uidMappings'][number]] }),
  ];
  for (const b of bad)
    assert.throws(
      () => plan([m('/ok', '/h/ok'), b]),
      (e) => isBerthError(e, 'InvalidArgument') && e.message.includes('container config: mounts'),
      b.containerPath,
    );
});

test('image volumes get deterministic host dirs and yield to CRI mounts', () => {
  const v = imageVolumeMounts({ '/data': {}, '/cache/': {} }, [m('/data', '/h/data')], '/var/lib/berth/containers/c1');
  assert.equal(v.length, 1);
  assert.equal(v[0]!.containerPath, '/cache');
  assert.match(v[0]!.hostPath, /^\/var\/lib\/berth\/containers\/c1\/volumes\/[0-9a-f]{32}$/);
  assert.deepEqual(imageVolumeMounts({ '/cache': {} }, [], '/var/lib/berth/containers/c1'), v);
  assert.throws(
    () => imageVolumeMounts({ 'rel/path': {} }, [], '/r'),
    (e) => isBerthError(e, 'InvalidArgument') && /Volumes/.test(e.message),
  );
});

test('recursive_read_only adds rro to a read-only private bind; with readonly false or another propagation it is refused naming the field', () => {
  const p = plan([m('/r', '/h/r', { readonly: true, recursiveReadOnly: true })]);
  assert.deepEqual(p.mounts.find((x) => x.destination === '/r')?.options, ['rbind', 'rprivate', 'ro', 'rro']);
  assert.throws(
    () => plan([m('/r', '/h/r', { readonly: false, recursiveReadOnly: true })]),
    (e) => isBerthError(e, 'InvalidArgument') && e.message.includes('mounts[0].readonly') && e.message.includes('recursive_read_only'),
  );
  assert.throws(
    () => plan([m('/ok', '/h/ok'), m('/r', '/h/r', { readonly: true, recursiveReadOnly: true, propagation: MountPropagation.PROPAGATION_HOST_TO_CONTAINER })]),
    (e) => isBerthError(e, 'InvalidArgument') && e.message.includes('mounts[1].propagation') && e.message.includes('PROPAGATION_HOST_TO_CONTAINER'),
  );
});

test('userns on the host network: sysfs becomes a read-only bind of the host /sys; other mounts untouched', () => {
  const out = bindSysfsForHostNetworkUserns([
    { destination: '/proc', type: 'proc', source: 'proc' },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
  ]);
  assert.deepEqual(out, [
    { destination: '/proc', type: 'proc', source: 'proc' },
    { destination: '/sys', type: 'bind', source: '/sys', options: ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'] },
  ]);
});

test('an image with more than 128 Volumes is refused, naming the field', () => {
  const many: Record<string, object> = {};
  for (let i = 0; i < 129; i++) many[`/v${i}`] = {};
  assert.throws(
    () => imageVolumeMounts(many, [], '/r'),
    (e) => isBerthError(e, 'InvalidArgument') && /image config Volumes/.test(e.message) && /129 volumes/.test(e.message),
  );
  delete many['/v0'];
  assert.equal(imageVolumeMounts(many, [], '/r').length, 128);
});

test('mount_options noexec/nodev/nosuid are added to the bind; anything else is refused naming the option', () => {
  const p = plan([m('/o', '/h/o', { readonly: true, mountOptions: ['noexec', 'nosuid', 'noexec', 'nodev'] })]);
  assert.deepEqual(p.mounts.find((x) => x.destination === '/o')?.options, ['rbind', 'rprivate', 'ro', 'noexec', 'nosuid', 'nodev']);
  for (const bad of ['exec', 'suid', 'rw', 'remount', 'mode=777']) {
    assert.throws(
      () => plan([m('/o', '/h/o', { mountOptions: ['nodev', bad] })]),
      (e) => isBerthError(e, 'InvalidArgument') && e.message.includes('mounts[0].mount_options[1]') && e.message.includes(bad),
      bad,
    );
  }
});

test('an image mount that reaches the spec unresolved is refused, never mounted as a host path', () => {
  assert.throws(
    () => plan([m('/v', '', { readonly: true, image: create(ImageSpecSchema, { image: 'sha256:00' }) })]),
    (e) => isBerthError(e, 'InvalidArgument') && e.message.includes('mounts[0].image'),
  );
});
