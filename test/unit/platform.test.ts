import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  compatiblePlatforms,
  currentPlatform,
  formatPlatform,
  normalizeArch,
  normalizePlatform,
  onlyPlatform,
  parsePlatform,
  selectManifest,
  selectManifests,
} from '../../src/core/images/platform.js';
import type { Descriptor, Platform } from '../../src/core/images/descriptor.js';
import { isBerthError } from '../../src/errors.js';

test('architecture aliases normalize to OCI names', () => {
  assert.deepEqual(normalizeArch('x86_64'), { architecture: 'amd64', variant: '' });
  assert.deepEqual(normalizeArch('amd64', 'v1'), { architecture: 'amd64', variant: '' });
  assert.deepEqual(normalizeArch('amd64', 'v3'), { architecture: 'amd64', variant: 'v3' });
  assert.deepEqual(normalizeArch('aarch64'), { architecture: 'arm64', variant: '' });
  assert.deepEqual(normalizeArch('arm64', 'v8'), { architecture: 'arm64', variant: '' });
  assert.deepEqual(normalizeArch('arm'), { architecture: 'arm', variant: 'v7' });
  assert.deepEqual(normalizeArch('arm', '6'), { architecture: 'arm', variant: 'v6' });
  assert.deepEqual(normalizeArch('armhf'), { architecture: 'arm', variant: 'v7' });
  assert.deepEqual(normalizeArch('armel'), { architecture: 'arm', variant: 'v6' });
  assert.deepEqual(normalizeArch('i386'), { architecture: '386', variant: '' });
  assert.deepEqual(normalizePlatform({ os: 'Linux', architecture: 'X86_64' }), { os: 'linux', architecture: 'amd64' });
});

test('the current platform is normalized linux with a known architecture', () => {
  const p = currentPlatform();
  assert.equal(p.os, 'linux');
  if (process.arch === 'x64') assert.deepEqual(p, { os: 'linux', architecture: 'amd64' });
  if (process.arch === 'arm64') assert.deepEqual(p, { os: 'linux', architecture: 'arm64' });
});

test('platform strings round-trip', () => {
  assert.deepEqual(parsePlatform('linux/arm/v6'), { os: 'linux', architecture: 'arm', variant: 'v6' });
  assert.deepEqual(parsePlatform('linux/aarch64'), { os: 'linux', architecture: 'arm64' });
  assert.deepEqual(parsePlatform('amd64'), { os: 'linux', architecture: 'amd64' });
  assert.equal(formatPlatform(parsePlatform('linux/arm')), 'linux/arm/v7');
  assert.throws(
    () => parsePlatform('linux/amd64/v2/x'),
    (e: unknown) => isBerthError(e, 'InvalidArgument'),
  );
  assert.throws(() => parsePlatform('linux/ amd64'), /invalid platform/);
});

test('os and architecture must both match', () => {
  const m = onlyPlatform({ os: 'linux', architecture: 'amd64' });
  assert.ok(m.match({ os: 'linux', architecture: 'amd64' }));
  assert.ok(m.match({ os: 'linux', architecture: 'x86_64' }));
  assert.ok(m.match({ os: 'linux', architecture: 'amd64', variant: 'v1' }));
  assert.ok(!m.match({ os: 'windows', architecture: 'amd64' }));
  assert.ok(!m.match({ os: 'linux', architecture: 'arm64' }));
  assert.ok(!m.match({ os: 'linux', architecture: 'amd64', variant: 'v2' }), 'baseline host cannot run v2');
});

test('arm64 v8 and plain arm64 are the same platform', () => {
  const m = onlyPlatform({ os: 'linux', architecture: 'arm64', variant: 'v8' });
  assert.equal(m.rank({ os: 'linux', architecture: 'arm64' }), 0);
  assert.equal(m.rank({ os: 'linux', architecture: 'aarch64', variant: '8' }), 0);
  assert.ok(m.match({ os: 'linux', architecture: 'arm', variant: 'v7' }), 'arm64 runs 32-bit arm');
  assert.ok(m.rank({ os: 'linux', architecture: 'arm', variant: 'v7' }) > 0);
});

test('newer amd64 variants run older ones, closest first', () => {
  const v = compatiblePlatforms({ os: 'linux', architecture: 'amd64', variant: 'v3' }).map(formatPlatform);
  assert.deepEqual(v, ['linux/amd64/v3', 'linux/amd64/v2', 'linux/amd64', 'linux/386']);
  const arm = compatiblePlatforms({ os: 'linux', architecture: 'arm', variant: 'v7' }).map(formatPlatform);
  assert.deepEqual(arm, ['linux/arm/v7', 'linux/arm/v6', 'linux/arm/v5']);
  const m = onlyPlatform({ os: 'linux', architecture: 'arm', variant: 'v6' });
  assert.ok(!m.match({ os: 'linux', architecture: 'arm', variant: 'v7' }));
  assert.ok(m.match({ os: 'linux', architecture: 'arm', variant: 'v5' }));
});

function desc(n: number, platform?: Platform, annotations?: Record<string, string>): Descriptor {
  const d: Descriptor = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: `sha256:${String(n).repeat(64).slice(0, 64)}`, size: n };
  if (platform) d.platform = platform;
  if (annotations) d.annotations = annotations;
  return d;
}

test('manifest selection prefers the exact platform over compatible ones', () => {
  const list = [
    desc(1, { os: 'linux', architecture: '386' }),
    desc(2, { os: 'linux', architecture: 'arm64', variant: 'v8' }),
    desc(3, { os: 'linux', architecture: 'amd64', variant: 'v2' }),
    desc(4, { os: 'linux', architecture: 'amd64' }),
    desc(5, { os: 'unknown', architecture: 'unknown' }, { 'vnd.docker.reference.type': 'attestation-manifest' }),
    desc(6),
  ];
  const amd64v2 = onlyPlatform({ os: 'linux', architecture: 'amd64', variant: 'v2' });
  assert.deepEqual(
    selectManifests(list, amd64v2).map((d) => d.size),
    [3, 4, 1, 6],
  );
  assert.equal(selectManifest(list, onlyPlatform(parsePlatform('linux/arm64'))).size, 2);
  assert.equal(selectManifest(list, onlyPlatform(parsePlatform('linux/amd64'))).size, 4);
});

test('no runnable manifest is NotFound naming the platform and the offered ones', () => {
  const list = [desc(1, { os: 'linux', architecture: 's390x' }), desc(2, { os: 'windows', architecture: 'amd64' })];
  assert.throws(
    () => selectManifest(list, onlyPlatform(parsePlatform('linux/amd64')), 'docker.io/library/x:1'),
    (e: unknown) => {
      assert.ok(isBerthError(e, 'NotFound'));
      assert.match(e.message, /linux\/amd64.*docker\.io\/library\/x:1.*linux\/s390x, windows\/amd64/);
      return true;
    },
  );
});
