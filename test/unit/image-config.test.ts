import { test } from 'node:test';
import assert from 'node:assert/strict';
import { imageUser, parseId, parseImageConfig } from '../../src/core/images/image-config.js';

const d = (c: string) => `sha256:${c.repeat(64)}`;

test('image user: CRI uid/username rules', () => {
  assert.deepEqual(imageUser('1002'), { uid: 1002 });
  assert.deepEqual(imageUser('www-data'), { username: 'www-data' });
  assert.deepEqual(imageUser('1003:100'), { uid: 1003 });
  assert.deepEqual(imageUser('www-data:users'), { username: 'www-data' });
  assert.deepEqual(imageUser(''), {});
  assert.deepEqual(imageUser(undefined), {});
  assert.deepEqual(imageUser('0'), { uid: 0 });
});

test('ids are unsigned 32-bit: values above 2^31 stay positive, above 2^32-1 are not ids', () => {
  assert.equal(parseId('4294967295'), 4294967295);
  assert.equal(parseId('2147483648'), 2147483648);
  assert.equal(parseId('4294967296'), undefined);
  assert.equal(parseId('-1'), undefined);
  assert.equal(parseId('1e3'), undefined);
  assert.deepEqual(imageUser('4294967296'), { username: '4294967296' });
});

test('image config: fields are type-checked and diff_ids validated', () => {
  const c = parseImageConfig(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { User: '1002', Env: ['A=1'], Cmd: ['sh'], Labels: { a: 'b' } },
      rootfs: { type: 'layers', diff_ids: [d('a'), d('b')] },
    }),
  );
  assert.equal(c.config.User, '1002');
  assert.deepEqual(c.rootfs.diff_ids, [d('a'), d('b')]);
  assert.throws(() => parseImageConfig('{"rootfs":{"diff_ids":["nope"]}}'), /rootfs\.diff_ids: invalid digest/);
  assert.throws(() => parseImageConfig('{"config":{"Env":"A=1"},"rootfs":{}}'), /config\.Env must be an array/);
  assert.throws(() => parseImageConfig('not json'), /not valid JSON/);
  assert.throws(() => parseImageConfig('{}'), /rootfs is missing/);
});
