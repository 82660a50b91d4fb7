import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  familiarName,
  familiarString,
  isDigest,
  manifestReference,
  parseImageSpec,
  parseReference,
  referenceString,
  repository,
} from '../../src/core/images/reference.js';
import { isBerthError } from '../../src/errors.js';

const D256 = 'sha256:' + 'a'.repeat(64);
const D512 = 'sha512:' + 'b'.repeat(128);

test('short names normalize to docker.io/library with the latest tag', () => {
  const r = parseReference('busybox');
  assert.deepEqual(r, { domain: 'docker.io', path: 'library/busybox', tag: 'latest' });
  assert.equal(referenceString(r), 'docker.io/library/busybox:latest');
  assert.equal(familiarName(r), 'busybox');
  assert.equal(familiarString(r), 'busybox:latest');
});

test('user repositories on docker hub keep their namespace', () => {
  const r = parseReference('user/app:1.2');
  assert.equal(referenceString(r), 'docker.io/user/app:1.2');
  assert.equal(familiarName(r), 'user/app');
  assert.equal(repository(r), 'docker.io/user/app');
});

test('index.docker.io is folded into docker.io', () => {
  assert.equal(referenceString(parseReference('index.docker.io/nginx')), 'docker.io/library/nginx:latest');
  assert.equal(referenceString(parseReference('docker.io/library/nginx:1')), 'docker.io/library/nginx:1');
});

test('hosts are recognised by a dot, a port, localhost or uppercase', () => {
  assert.deepEqual(parseReference('localhost:5000/x'), { domain: 'localhost:5000', path: 'x', tag: 'latest' });
  assert.deepEqual(parseReference('localhost/x/y:t'), { domain: 'localhost', path: 'x/y', tag: 't' });
  assert.equal(parseReference('quay.io/a/b/c').domain, 'quay.io');
  assert.equal(parseReference('127.0.0.1:5000/a').domain, '127.0.0.1:5000');
  assert.equal(parseReference('Registry/a').domain, 'Registry');
  assert.equal(parseReference('[::1]:5000/a').domain, '[::1]:5000');
  assert.equal(parseReference('foo/bar').domain, 'docker.io');
  assert.equal(familiarName(parseReference('quay.io/a/b')), 'quay.io/a/b');
});

test('digests pin content and suppress the default tag', () => {
  const r = parseReference(`busybox@${D256}`);
  assert.deepEqual(r, { domain: 'docker.io', path: 'library/busybox', digest: D256 });
  assert.ok(isDigest(r));
  assert.equal(manifestReference(r), D256);
  assert.equal(referenceString(r), `docker.io/library/busybox@${D256}`);
  assert.equal(parseReference(`h.io/x@${D512}`).digest, D512);
});

test('tag and digest together are both kept and the digest is what gets fetched', () => {
  const r = parseReference(`localhost:5000/x:v1@${D256}`);
  assert.equal(r.tag, 'v1');
  assert.equal(r.digest, D256);
  assert.equal(manifestReference(r), D256);
  assert.equal(referenceString(r), `localhost:5000/x:v1@${D256}`);
  assert.ok(!isDigest(parseReference('x:v1')));
});

test('port-like suffixes after the last slash are tags, not ports', () => {
  assert.deepEqual(parseReference('host:5000/app:5000'), { domain: 'host:5000', path: 'app', tag: '5000' });
});

function assertInvalid(input: string, pattern: RegExp): void {
  assert.throws(
    () => parseReference(input),
    (e: unknown) => {
      assert.ok(isBerthError(e, 'InvalidArgument'), `expected InvalidArgument for ${input}`);
      assert.equal(e.code, 'image.invalid_reference');
      assert.ok(e.message.includes(`"${input.length > 100 ? input.slice(0, 64) : input}`), e.message);
      assert.match(e.message, pattern);
      return true;
    },
  );
}

test('bad references are InvalidArgument naming the reference', () => {
  assertInvalid('', /empty/);
  assertInvalid('Busybox:latest', /lowercase/);
  assertInvalid('docker.io/Library/busybox', /lowercase/);
  assertInvalid('busybox:', /bad tag/);
  assertInvalid('busybox:-x', /bad tag/);
  assertInvalid('busybox:' + 't'.repeat(129), /bad tag/);
  assertInvalid('busybox@sha256:abc', /bad digest/);
  assertInvalid(`busybox@sha256:${'A'.repeat(64)}`, /bad digest/);
  assertInvalid(`busybox@md5:${'a'.repeat(32)}`, /bad digest/);
  assertInvalid('a//b', /path component/);
  assertInvalid('a/b_', /path component/);
  assertInvalid('-a.io/b', /registry host/);
  assertInvalid('a b', /path component|bad tag/);
  assertInvalid(':tag', /missing repository/);
  assertInvalid('quay.io/', /missing repository path/);
  assertInvalid('x/' + 'a'.repeat(260), /longer than 255/);
  assertInvalid('a'.repeat(600), /longer than 512/);
  assertInvalid('a'.repeat(64), /image id/);
  assertInvalid(D256, /image id/);
});

test('separators inside path components follow the distribution grammar', () => {
  for (const ok of ['a.b', 'a_b', 'a__b', 'a-b', 'a---b', 'a1/b2-c.d_e']) parseReference(ok);
  for (const bad of ['a..b', 'a___b', '.a', 'a.', 'a-']) assert.throws(() => parseReference(bad), /invalid image reference/);
});

test('image specs distinguish ids from references', () => {
  const hex = 'c'.repeat(64);
  assert.deepEqual(parseImageSpec(hex), { kind: 'id', id: `sha256:${hex}` });
  assert.deepEqual(parseImageSpec(`sha256:${hex}`), { kind: 'id', id: `sha256:${hex}` });
  const spec = parseImageSpec('nginx:1');
  assert.equal(spec.kind, 'reference');
  assert.equal(spec.kind === 'reference' && referenceString(spec.ref), 'docker.io/library/nginx:1');
  assert.throws(() => parseImageSpec('NGINX'), /lowercase/);
});
