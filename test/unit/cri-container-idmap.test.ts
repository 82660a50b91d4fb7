/** Which mounts berthd idmaps, and the refusals that name the field (no mount is made for those). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { MountSchema, NamespaceMode, NamespaceOptionSchema } from '../../src/api/cri/runtime/v1/api_pb.js';
import { isBerthError } from '../../src/errors.js';
import { prepareIdmapMounts } from '../../src/cri/container/idmap.js';

const maps = [{ hostId: 400000, containerId: 0, length: 65536 }];
const podNs = create(NamespaceOptionSchema, { usernsOptions: { mode: NamespaceMode.POD, uids: maps, gids: maps } });
const base = { state: '/nonexistent-state', containerId: 'c1', usernsPath: '/nonexistent/user' };

test('mounts without mappings are passed as they are; nothing is staged', () => {
  const mounts = [create(MountSchema, { containerPath: '/a', hostPath: '/h/a' })];
  const plan = prepareIdmapMounts({ ...base, mounts, podNamespaces: undefined });
  assert.deepEqual(plan.mounts, mounts);
  plan.release();
});

test("mappings without a pod user namespace, or other than the pod's, are INVALID_ARGUMENT naming the mount", () => {
  const m = (uids: typeof maps) => [
    create(MountSchema, { containerPath: '/a', hostPath: '/h/a' }),
    create(MountSchema, { containerPath: '/b', hostPath: '/h/b', uidMappings: uids, gidMappings: maps }),
  ];
  assert.throws(
    () => prepareIdmapMounts({ ...base, mounts: m(maps), podNamespaces: undefined }),
    (e) => isBerthError(e, 'InvalidArgument') && e.message.includes('config.mounts[1].uid_mappings') && e.message.includes('user namespace'),
  );
  assert.throws(
    () => prepareIdmapMounts({ ...base, mounts: m([{ hostId: 1, containerId: 0, length: 1 }]), podNamespaces: podNs }),
    (e) => isBerthError(e, 'InvalidArgument') && e.message.includes('config.mounts[1]') && e.message.includes("pod's user namespace mappings"),
  );
});
