/** The overlay mount of a userns container's rootfs, rewritten onto idmapped layer clones. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isBerthError } from '../../src/errors.js';
import { withLowers } from '../../src/cri/container/userns.js';

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
