import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isBerthError } from '../../src/errors.js';
import { imageGroupsOf, loadUserDb, MAX_USER_DB_LINES, parseGroup, parsePasswd, resolveUserString } from '../../src/oci/passwd.js';

const PASSWD = [
  'root:x:0:0:root:/root:/bin/sh',
  '# comment',
  '',
  'daemon:x:1:1::/usr/sbin:/usr/sbin/nologin',
  'alice:x:1000:1000::/home/alice:/bin/sh',
  'big:x:3000000000:3000000001::/:/bin/sh',
  'broken:x:notanumber:5::/:/bin/sh',
  'wrap:x:-1:5::/:/bin/sh',
  'huge:x:4294967296:5::/:/bin/sh',
  '+nis',
].join('\n');

const GROUP = ['root:x:0:', 'wheel:x:10:root,alice', 'alice:x:1000:alice', 'audio:x:29:bob,alice', 'video:x:44: alice , bob', 'weird:x:abc:alice'].join('\n');

const db = loadUserDb(PASSWD, GROUP);

test('passwd parsing skips comments, NIS lines and malformed ids instead of reading them as 0', () => {
  const names = parsePasswd(PASSWD).map((e) => e.name);
  assert.deepEqual(names, ['root', 'daemon', 'alice', 'big']);
});

test('uids and gids above 2^31 stay unsigned', () => {
  const big = parsePasswd(PASSWD).find((e) => e.name === 'big');
  assert.equal(big?.uid, 3000000000);
  assert.equal(big?.gid, 3000000001);
  assert.deepEqual(resolveUserString('big', db, 'f'), { uid: 3000000000, gid: 3000000001, name: 'big' });
  assert.deepEqual(resolveUserString('2147483648:4294967294', db, 'f'), { uid: 2147483648, gid: 4294967294 });
});

test('group parsing trims member lists and skips groups with bad gids', () => {
  const groups = parseGroup(GROUP);
  assert.deepEqual(groups.find((g) => g.name === 'video')?.members, ['alice', 'bob']);
  assert.equal(
    groups.find((g) => g.name === 'weird'),
    undefined,
  );
});

test('user string resolution table', () => {
  const cases: Array<[string, { uid: number; gid: number; name?: string }]> = [
    ['alice', { uid: 1000, gid: 1000, name: 'alice' }],
    ['1000', { uid: 1000, gid: 1000, name: 'alice' }],
    ['1234', { uid: 1234, gid: 0 }],
    ['1000:44', { uid: 1000, gid: 44, name: 'alice' }],
    ['alice:29', { uid: 1000, gid: 29, name: 'alice' }],
    ['alice:wheel', { uid: 1000, gid: 10, name: 'alice' }],
    ['1234:wheel', { uid: 1234, gid: 10 }],
    ['0', { uid: 0, gid: 0, name: 'root' }],
  ];
  for (const [s, want] of cases) assert.deepEqual(resolveUserString(s, db, 'f'), want, s);
});

test('numeric user without a passwd file gets gid 0; a name without one is an error', () => {
  assert.deepEqual(resolveUserString('5000', {}, 'f'), { uid: 5000, gid: 0 });
  assert.throws(
    () => resolveUserString('alice', {}, 'image config User'),
    (e) => isBerthError(e, 'InvalidArgument') && /image config User/.test(e.message),
  );
});

test('invalid user strings are rejected with InvalidArgument naming the field', () => {
  for (const s of ['nobody', 'alice:nogroup', 'a:b:c', ':5', '5:', '4294967295', '4294967296', '-1', '1e3:0']) {
    assert.throws(
      () => resolveUserString(s, db, 'container config: linux.security_context.run_as_username'),
      (e) => isBerthError(e, 'InvalidArgument') && e.message.includes('run_as_username'),
      s,
    );
  }
});

test('image groups of a user come from /etc/group membership, excluding the group named after the user', () => {
  assert.deepEqual(imageGroupsOf({ uid: 1000, gid: 1000, name: 'alice' }, db), [10, 29, 44]);
  // By uid only: the name is looked up in passwd.
  assert.deepEqual(imageGroupsOf({ uid: 1000, gid: 1000 }, db), [10, 29, 44]);
  assert.deepEqual(imageGroupsOf({ uid: 4242, gid: 0 }, db), []);
});

test('oversized user databases are rejected', () => {
  assert.throws(
    () => parsePasswd('x\n'.repeat(MAX_USER_DB_LINES + 1)),
    (e) => isBerthError(e, 'InvalidArgument') && /lines/.test(e.message),
  );
  assert.throws(
    () => parseGroup('a'.repeat(5 * 1024 * 1024)),
    (e) => isBerthError(e, 'InvalidArgument') && /bytes/.test(e.message),
  );
});
