import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { NamespaceMode, NamespaceOptionSchema, type NamespaceOption } from '../../src/api/cri/runtime/v1/api_pb.js';
import { isBerthError } from '../../src/errors.js';
import { containerNamespaces, effectiveNamespaceOptions, podNamespacePlan, sandboxNamespaces } from '../../src/oci/namespaces.js';

const opts = (o: Partial<Record<'network' | 'pid' | 'ipc', NamespaceMode>> & { userns?: boolean } = {}): NamespaceOption =>
  create(NamespaceOptionSchema, {
    network: o.network,
    pid: o.pid,
    ipc: o.ipc,
    usernsOptions: o.userns
      ? { mode: NamespaceMode.POD, uids: [{ hostId: 100000, containerId: 0, length: 65536 }], gids: [{ hostId: 100000, containerId: 0, length: 65536 }] }
      : undefined,
  });
const F = 'f';
const pins = { net: '/run/n/x', ipc: '/run/n/x.ipc', uts: '/run/n/x.uts', user: '/run/n/x.user' };

test('a kubelet-style pod pins net, ipc and uts and runs no pause', () => {
  assert.deepEqual(podNamespacePlan(opts({ pid: NamespaceMode.CONTAINER }), F), { pin: { net: true, ipc: true, uts: true }, pause: false });
});

test('only a shared pid namespace (POD, also the proto default) needs a pause', () => {
  assert.equal(podNamespacePlan(opts({ pid: NamespaceMode.POD }), F).pause, true);
  assert.equal(podNamespacePlan(undefined, F).pause, true);
  assert.equal(podNamespacePlan(opts({ pid: NamespaceMode.NODE }), F).pause, false);
});

test('host network pins neither net nor uts; host ipc pins no ipc', () => {
  assert.deepEqual(podNamespacePlan(opts({ pid: NamespaceMode.CONTAINER, network: NamespaceMode.NODE }), F).pin, { net: false, uts: false, ipc: true });
  assert.deepEqual(podNamespacePlan(opts({ pid: NamespaceMode.CONTAINER, network: NamespaceMode.NODE, ipc: NamespaceMode.NODE }), F).pin, {
    net: false,
    uts: false,
    ipc: false,
  });
});

test('a user namespace pod pins a user namespace with its mappings', () => {
  const p = podNamespacePlan(opts({ pid: NamespaceMode.CONTAINER, userns: true }), F);
  assert.deepEqual(p.pin.userns?.uidMappings, [{ containerID: 0, hostID: 100000, size: 65536 }]);
  assert.throws(
    () => podNamespacePlan(create(NamespaceOptionSchema, { usernsOptions: { mode: NamespaceMode.POD } }), F),
    (e) => isBerthError(e, 'InvalidArgument') && e.message.includes('uids'),
  );
});

test('the pause joins the pinned namespaces and owns only pid and mount', () => {
  const s = sandboxNamespaces({ options: opts({ userns: true }), pins, field: F });
  assert.deepEqual(s.namespaces, [
    { type: 'pid' },
    { type: 'ipc', path: pins.ipc },
    { type: 'uts', path: pins.uts },
    { type: 'network', path: pins.net },
    { type: 'mount' },
    { type: 'user', path: pins.user },
  ]);
  assert.equal(s.userns?.gidMappings.length, 1);
});

test('containers join the pinned namespaces; pid CONTAINER gets a new pid namespace', () => {
  const c = containerNamespaces({ options: opts({ pid: NamespaceMode.CONTAINER }), pod: pins, cgroupNamespace: false, field: F });
  assert.deepEqual(c.namespaces, [
    { type: 'mount' },
    { type: 'network', path: pins.net },
    { type: 'uts', path: pins.uts },
    { type: 'ipc', path: pins.ipc },
    { type: 'pid' },
  ]);
});

test('pid POD joins the pause pid namespace; in a pod without pause it gets a new one', () => {
  const c = containerNamespaces({ options: opts({ pid: NamespaceMode.POD }), pod: { ...pins, pid: '/proc/42/ns/pid' }, cgroupNamespace: false, field: F });
  assert.deepEqual(
    c.namespaces.find((n) => n.type === 'pid'),
    { type: 'pid', path: '/proc/42/ns/pid' },
  );
  const lone = containerNamespaces({ options: opts({ pid: NamespaceMode.POD }), pod: pins, cgroupNamespace: false, field: F });
  assert.deepEqual(
    lone.namespaces.find((n) => n.type === 'pid'),
    { type: 'pid' },
  );
});

test('pid TARGET joins the target container; NODE joins nothing', () => {
  const t = containerNamespaces({
    options: create(NamespaceOptionSchema, { pid: NamespaceMode.TARGET, targetId: 'c1' }),
    pod: pins,
    targetPid: 77,
    cgroupNamespace: false,
    field: F,
  });
  assert.deepEqual(
    t.namespaces.find((n) => n.type === 'pid'),
    { type: 'pid', path: '/proc/77/ns/pid' },
  );
  const n = containerNamespaces({
    options: opts({ pid: NamespaceMode.NODE, network: NamespaceMode.NODE, ipc: NamespaceMode.NODE }),
    pod: {},
    cgroupNamespace: false,
    field: F,
  });
  assert.deepEqual(n.namespaces, [{ type: 'mount' }]);
});

test('a user namespace container joins the pinned user namespace and keeps the mappings', () => {
  const c = containerNamespaces({ options: opts({ pid: NamespaceMode.CONTAINER, userns: true }), pod: pins, cgroupNamespace: false, field: F });
  assert.deepEqual(c.namespaces.at(-1), { type: 'user', path: pins.user });
  assert.equal(c.userns?.uidMappings[0]?.hostID, 100000);
});

test('a pod network container cannot join a pod without a network pin', () => {
  assert.throws(
    () => containerNamespaces({ options: opts({ pid: NamespaceMode.CONTAINER }), pod: { ipc: pins.ipc }, cgroupNamespace: false, field: F }),
    (e) => isBerthError(e, 'InvalidArgument') && e.message.includes('network'),
  );
});

test('a container at POD follows a pod that uses the host namespace; explicit modes are kept', () => {
  const pod = create(NamespaceOptionSchema, { network: NamespaceMode.NODE, ipc: NamespaceMode.NODE, pid: NamespaceMode.NODE });
  const eff = effectiveNamespaceOptions(undefined, pod)!;
  assert.deepEqual([eff.network, eff.ipc, eff.pid], [NamespaceMode.NODE, NamespaceMode.NODE, NamespaceMode.NODE]);
  const own = create(NamespaceOptionSchema, { network: NamespaceMode.POD, ipc: NamespaceMode.CONTAINER, pid: NamespaceMode.CONTAINER });
  const kept = effectiveNamespaceOptions(own, pod)!;
  assert.deepEqual([kept.network, kept.ipc, kept.pid], [NamespaceMode.NODE, NamespaceMode.CONTAINER, NamespaceMode.CONTAINER]);
  const podNet = create(NamespaceOptionSchema, { network: NamespaceMode.POD });
  assert.equal(effectiveNamespaceOptions(own, podNet), own, 'nothing to follow: the container options unchanged');
  const joined = containerNamespaces({ options: eff, pod: {}, cgroupNamespace: false, field: 'f' });
  assert.deepEqual(
    joined.namespaces.map((n) => n.type),
    ['mount'],
    'host network, IPC and pid: nothing to join',
  );
});

test('user namespace options as kubelet sends them pass; the shapes kubelet never sends are refused naming the field (as containerd)', () => {
  const ns = (u: Record<string, unknown>) => create(NamespaceOptionSchema, { pid: NamespaceMode.CONTAINER, usernsOptions: u });
  const one = [{ hostId: 131072, containerId: 0, length: 65536 }];
  // hostUsers: true → NODE without mappings: the host's user namespace, nothing pinned.
  assert.equal(podNamespacePlan(ns({ mode: NamespaceMode.NODE }), F).pin.userns, undefined);
  assert.equal(podNamespacePlan(ns({ mode: NamespaceMode.POD, uids: one, gids: one }), F).pin.userns?.gidMappings[0]?.hostID, 131072);
  const refused = (u: Record<string, unknown>, field: string, words: RegExp) =>
    assert.throws(
      () => podNamespacePlan(ns(u), F),
      (e) =>
        isBerthError(e, 'InvalidArgument') && e.code === 'oci.invalid_userns' && e.message.startsWith(`${F}.userns_options${field}:`) && words.test(e.message),
      `${field} ${words}`,
    );
  const two = [
    { hostId: 131072, containerId: 0, length: 1000 },
    { hostId: 231072, containerId: 1000, length: 1000 },
  ];
  refused({ mode: NamespaceMode.POD, uids: two, gids: one }, '.uids', /2 mappings/);
  refused({ mode: NamespaceMode.POD, uids: one, gids: two }, '.gids', /2 mappings/);
  refused(
    { mode: NamespaceMode.POD, uids: [{ hostId: 131072, containerId: 1, length: 65536 }], gids: one },
    '.uids[0].container_id',
    /container id 0 .*unmapped/,
  );
  refused({ mode: NamespaceMode.POD, uids: one, gids: [{ hostId: 131072, containerId: 1000, length: 1 }] }, '.gids[0].container_id', /unmapped/);
  refused({ mode: NamespaceMode.NODE, uids: one, gids: one }, '', /NODE .*no mappings/);
  refused({ mode: NamespaceMode.CONTAINER, uids: one, gids: one }, '.mode', /CONTAINER/);
  refused({ mode: NamespaceMode.TARGET, uids: one, gids: one }, '.mode', /TARGET/);
  // The container's own options go through the same check at CreateContainer.
  assert.throws(
    () => containerNamespaces({ options: ns({ mode: NamespaceMode.POD, uids: two, gids: one }), pod: pins, cgroupNamespace: false, field: 'config' }),
    (e) => isBerthError(e, 'InvalidArgument') && e.message.startsWith('config.namespace_options.userns_options.uids:'),
  );
});
