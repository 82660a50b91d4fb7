/** A userns container's rootfs: the overlay rewritten onto idmapped layer clones, and the choice between idmap and the shifted copy. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isBerthError } from '../../src/errors.js';
import { create } from '@bufbuild/protobuf';
import { NamespaceMode, PodSandboxConfigSchema } from '../../src/api/cri/runtime/v1/api_pb.js';
import { remapName, Remapper, type Snapshotter } from '../../src/core/snapshots/index.js';
import { prepareContainerRootfs, withLowers } from '../../src/cri/container/userns.js';
import type { RuntimeContext } from '../../src/cri/server/runtime-context.js';

test('withLowers replaces only the lowerdir of the overlay, keeping order and the other options', () => {
  const m = [{ type: 'overlay', source: 'overlay', options: ['workdir=/s/2/work', 'upperdir=/s/2/fs', 'lowerdir=/s/1/fs:/s/0/fs', 'index=off'] }];
  assert.deepEqual(withLowers(m, ['/st/idmap/r-0', '/st/idmap/r-1']), [
    { type: 'overlay', source: 'overlay', options: ['workdir=/s/2/work', 'upperdir=/s/2/fs', 'lowerdir=/st/idmap/r-0:/st/idmap/r-1', 'index=off'] },
  ]);
  assert.deepEqual(m[0]!.options[2], 'lowerdir=/s/1/fs:/s/0/fs', 'the input is not changed');
});

test('withLowers refuses what is not one overlay mount with a lowerdir (a bind rootfs, several mounts)', () => {
  const internal = (e: unknown) => isBerthError(e, 'Internal') && e.code === 'container.idmap_rootfs';
  assert.throws(() => withLowers([{ type: 'bind', source: '/s/1/fs', options: ['rbind', 'rw'] }], ['/x']), internal);
  assert.throws(() => withLowers([], ['/x']), internal);
  assert.throws(() => withLowers([{ type: 'overlay', source: 'overlay', options: ['upperdir=/u'] }], ['/x']), internal);
});

/** A snapshotter that hands out bind mounts and has no overlay (like the native driver). */
function fakeSnapshotter() {
  const prepared: { key: string; parent?: string }[] = [];
  const removed: string[] = [];
  const sn = {
    driver: 'native',
    root: '/nonexistent',
    async prepare(key: string, parent?: string) {
      prepared.push({ key, parent });
      return [{ type: 'bind', source: `/snap/${key}`, options: ['rbind', 'rw'] }];
    },
    async applyTarget() {
      return { dir: '/nonexistent/upper', mode: 'native', lowers: [] };
    },
    // Every remapped parent "exists" already: no copy is built in this test.
    async stat(key: string) {
      return { key, kind: 'committed', created: new Date(), updated: new Date(), labels: {} };
    },
    async remove(key: string) {
      removed.push(key);
    },
  };
  return { sn, prepared, removed };
}

function fakeCtx(usernsRootfs: { mode: 'idmap' | 'copy'; fallback: boolean }, sn: unknown) {
  const warnings: { msg: string; fields: Record<string, unknown> }[] = [];
  const log = {
    info: () => undefined,
    debug: () => undefined,
    error: () => undefined,
    warn: (msg: string, fields: Record<string, unknown>) => warnings.push({ msg, fields }),
  };
  const ctx = { settings: { state: '/nonexistent/state', usernsRootfs }, snapshotter: sn, log, idmapRoots: new Set(), usernsRootfsLogged: {} };
  return { ctx: { ...ctx, remapper: new Remapper(sn as Snapshotter) } as unknown as RuntimeContext, warnings };
}

const usernsSandbox = create(PodSandboxConfigSchema, {
  linux: {
    securityContext: {
      namespaceOptions: {
        usernsOptions: {
          mode: NamespaceMode.POD,
          uids: [{ hostId: 200000, containerId: 0, length: 65536 }],
          gids: [{ hostId: 200000, containerId: 0, length: 65536 }],
        },
      },
    },
  },
});
const plan = { uidMappings: [{ containerID: 0, hostID: 200000, size: 65536 }], gidMappings: [{ containerID: 0, hostID: 200000, size: 65536 }] };

test('auto (idmap with fallback): where the idmapped layers are refused, the error is logged and the container gets the shifted copy', async () => {
  const { sn, prepared, removed } = fakeSnapshotter();
  const { ctx, warnings } = fakeCtx({ mode: 'idmap', fallback: true }, sn);
  const r = await prepareContainerRootfs(ctx, 'c1', 'chain', usernsSandbox, {}, '/tmp', '/proc/1/ns/user');
  assert.equal(r.via, 'copy');
  assert.deepEqual(
    prepared,
    [
      { key: 'c1', parent: 'chain' },
      { key: 'c1', parent: remapName('chain', plan) },
    ],
    'first on the image, then on its remapped copy',
  );
  assert.deepEqual(removed, ['c1'], 'the snapshot of the refused attempt is removed first');
  assert.equal(warnings.length, 1);
  assert.match(String(warnings[0]!.fields.error), /snapshotter native gives no overlay/, 'the refusal is logged as it was');
});

test('idmap without fallback: the refusal fails the container (nothing left), and copy mode never tries idmapped layers', async () => {
  const a = fakeSnapshotter();
  const { ctx } = fakeCtx({ mode: 'idmap', fallback: false }, a.sn);
  await assert.rejects(
    prepareContainerRootfs(ctx, 'c2', 'chain', usernsSandbox, {}, '/tmp', '/proc/1/ns/user'),
    (e) => isBerthError(e, 'Internal') && e.code === 'container.idmap_rootfs',
  );
  assert.deepEqual(a.removed, ['c2']);
  const b = fakeSnapshotter();
  const copy = fakeCtx({ mode: 'copy', fallback: false }, b.sn);
  assert.equal((await prepareContainerRootfs(copy.ctx, 'c3', 'chain', usernsSandbox, {}, '/tmp', '/proc/1/ns/user')).via, 'copy');
  assert.deepEqual(b.prepared, [{ key: 'c3', parent: remapName('chain', plan) }]);
  assert.equal(copy.warnings.length, 0);
  // A pod on the host's user namespace: the image snapshot as is.
  const c = fakeSnapshotter();
  const plain = fakeCtx({ mode: 'idmap', fallback: true }, c.sn);
  assert.equal((await prepareContainerRootfs(plain.ctx, 'c4', 'chain', create(PodSandboxConfigSchema, {}), {}, '/tmp')).via, 'plain');
  assert.deepEqual(c.prepared, [{ key: 'c4', parent: 'chain' }]);
});
