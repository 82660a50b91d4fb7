import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bundleAccess } from '../../src/runtime/bundle.js';
import { isBerthError } from '../../src/errors.js';

test('a bundle dir is root-only unless the container runs in a user namespace', () => {
  assert.deepEqual(bundleAccess({ linux: { namespaces: [{ type: 'pid' }, { type: 'mount' }] } }), { mode: 0o700 });
  assert.deepEqual(bundleAccess({}), { mode: 0o700 });
});

test('with a user namespace the dir opens to the host group of the container root only (0710)', () => {
  const spec = {
    linux: {
      namespaces: [{ type: 'user', path: '/run/berth/netns/x.user' }, { type: 'mount' }],
      uidMappings: [{ containerID: 0, hostID: 400000, size: 65536 }],
      gidMappings: [
        { containerID: 100, hostID: 900000, size: 10 },
        { containerID: 0, hostID: 500000, size: 65536 },
      ],
    },
  };
  assert.deepEqual(bundleAccess(spec), { mode: 0o710, gid: 500000 });
});

test('a user namespace that does not map gid 0 is refused naming the field, never opened to everyone (0711)', () => {
  const spec = { linux: { namespaces: [{ type: 'user' }], gidMappings: [{ containerID: 1, hostID: 500001, size: 10 }] } };
  assert.throws(
    () => bundleAccess(spec),
    (e) => isBerthError(e, 'InvalidArgument') && /linux\.gidMappings/.test(e.message) && /gid 0/.test(e.message),
  );
  assert.throws(
    () => bundleAccess({ linux: { namespaces: [{ type: 'user' }] } }),
    (e) => isBerthError(e, 'InvalidArgument'),
  );
});
