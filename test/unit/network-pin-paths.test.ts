import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isBerthError } from '../../src/errors.js';
import { pinPaths } from '../../src/network/pin.js';

test('pin paths: the netns keeps the plain id, the others get a kind suffix', () => {
  assert.deepEqual(pinPaths('/run/berth/netns', 'abc', ['user', 'net', 'ipc', 'uts']), {
    user: '/run/berth/netns/abc.user',
    net: '/run/berth/netns/abc',
    ipc: '/run/berth/netns/abc.ipc',
    uts: '/run/berth/netns/abc.uts',
  });
  assert.deepEqual(pinPaths('/d', 'abc', ['ipc']), { ipc: '/d/abc.ipc' });
});

test('pin paths refuse ids that could leave the directory or alias another pin', () => {
  for (const bad of ['../x', 'a/b', '', 'x.ipc', '.hidden']) {
    assert.throws(
      () => pinPaths('/d', bad, ['net']),
      (e) => isBerthError(e, 'InvalidArgument'),
      bad,
    );
  }
});
