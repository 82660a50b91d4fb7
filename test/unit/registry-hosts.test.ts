import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { RegistryClient, RegistryHosts, endpointUrl, isLoopbackHost, type RegistryClientOptions } from '../../src/registry/index.js';
import { parseReference } from '../../src/core/images/reference.js';
import { isBerthError } from '../../src/errors.js';
import { withRegistries } from '../helpers/fake-registry.js';

const fast: RegistryClientOptions = { retry: { attempts: 2, baseDelayMs: 2, maxDelayMs: 10 } };

test('docker.io pulls go to registry-1.docker.io over https', () => {
  const eps = new RegistryHosts().endpoints('docker.io');
  assert.deepEqual(
    eps.map((e) => e.url.href),
    ['https://registry-1.docker.io/v2'],
  );
  assert.equal(eps[0]!.mirror, false);
  assert.equal(endpointUrl(eps[0]!, 'library/busybox/manifests/latest').href, 'https://registry-1.docker.io/v2/library/busybox/manifests/latest');
});

test('plain http is chosen only for loopback hosts and explicitly configured endpoints', () => {
  const hosts = new RegistryHosts({
    'quay.io': { endpoints: ['mirror.internal:5000', 'http://plain.mirror:8080'] },
  });
  assert.deepEqual(
    hosts.endpoints('quay.io').map((e) => e.url.href),
    ['https://mirror.internal:5000/v2', 'http://plain.mirror:8080/v2', 'https://quay.io/v2'],
  );
  assert.equal(hosts.endpoints('registry.example.com')[0]!.url.protocol, 'https:');
  assert.equal(hosts.endpoints('registry.example.com:5000')[0]!.url.href, 'https://registry.example.com:5000/v2');
  assert.equal(hosts.endpoints('localhost:5000')[0]!.url.href, 'http://localhost:5000/v2');
  assert.equal(hosts.endpoints('127.0.0.1:5000')[0]!.url.protocol, 'http:');
  assert.equal(hosts.endpoints('[::1]:5000')[0]!.url.protocol, 'http:');
  assert.ok(hosts.httpAllowed('plain.mirror:8080'));
  assert.ok(!hosts.httpAllowed('plain.mirror:8081'));
  assert.throws(
    () => hosts.checkScheme(new URL('http://registry.example.com/v2/'), 'a test'),
    (e: unknown) => isBerthError(e, 'PermissionDenied'),
  );
  hosts.checkScheme(new URL('http://127.0.0.5:1/'), 'a test');
  hosts.checkScheme(new URL('https://anywhere.example/'), 'a test');
  assert.ok(isLoopbackHost('localhost') && isLoopbackHost('127.1.2.3:80') && !isLoopbackHost('128.0.0.1') && !isLoopbackHost('localhost.example.com'));
});

test('mirror endpoints carry ns=<upstream>, a custom path replaces /v2, and bad endpoints are refused', () => {
  const hosts = new RegistryHosts({ 'docker.io': { endpoints: ['https://mirror.example/prefix/v2/'] }, '*': { endpoints: ['https://all.example'] } });
  const [m, up] = hosts.endpoints('docker.io');
  assert.equal(endpointUrl(m!, 'library/x/manifests/1').href, 'https://mirror.example/prefix/v2/library/x/manifests/1?ns=docker.io');
  assert.equal(endpointUrl(up!, 'library/x/manifests/1').search, '');
  assert.deepEqual(
    hosts.endpoints('ghcr.io').map((e) => e.url.host),
    ['all.example', 'ghcr.io'],
  );
  assert.throws(
    () => new RegistryHosts({ x: { endpoints: ['ftp://x'] } }),
    (e: unknown) => isBerthError(e, 'InvalidArgument'),
  );
  assert.throws(() => new RegistryHosts({ x: { endpoints: ['https://u:p@x'] } }), /must not carry credentials/);
});

test('a mirror is tried first and a failing mirror falls back to the upstream', () =>
  withRegistries(2, async ([mirror, upstream]) => {
    const img = upstream!.addImage('app', 'v1');
    const c = new RegistryClient({ ...fast, mirrors: { [upstream!.host]: { endpoints: [mirror!.url] } } });
    try {
      const r = parseReference(`${upstream!.host}/app:v1`);
      const { descriptor, endpoint } = await c.resolveWithEndpoint(r);
      assert.deepEqual(descriptor, img.manifest);
      assert.equal(endpoint.host, upstream!.host);
      const mreq = mirror!.apiRequests();
      assert.equal(mreq.length, 1, 'mirror asked first');
      assert.equal(mreq[0]!.query.get('ns'), upstream!.host);
      assert.equal(upstream!.apiRequests()[0]!.query.get('ns'), null);

      // When the mirror has it, the upstream is not asked.
      mirror!.addImage('app', 'v1');
      upstream!.requests.length = 0;
      assert.equal((await c.resolveWithEndpoint(r)).endpoint.host, mirror!.host);
      assert.equal(upstream!.requests.length, 0);
    } finally {
      await c.close();
    }
  }));

test('an unreachable mirror falls through; NotFound everywhere is NotFound; unreachable upstream is Unavailable', async () => {
  // A port that was just free and is now closed: connections are refused.
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
  const deadPort = (probe.address() as { port: number }).port;
  await new Promise<void>((r) => probe.close(() => r()));
  const dead = `http://127.0.0.1:${deadPort}`;

  await withRegistries(2, async ([mirror, upstream]) => {
    const img = upstream!.addImage('app', 'v1');
    const c = new RegistryClient({ ...fast, mirrors: { [upstream!.host]: { endpoints: [dead, mirror!.url] } } });
    try {
      assert.deepEqual(await c.resolve(parseReference(`${upstream!.host}/app:v1`)), img.manifest);
      await assert.rejects(c.resolve(parseReference(`${upstream!.host}/app:missing`)), (e: unknown) => {
        assert.ok(isBerthError(e, 'NotFound'), String(e));
        assert.equal(e.code, 'image.not_found');
        assert.ok(e.message.includes(`registry ${upstream!.host}`), e.message);
        assert.ok(e.message.includes(`${upstream!.host}/app:missing`), e.message);
        return true;
      });
    } finally {
      await c.close();
    }
  });

  const c = new RegistryClient(fast);
  try {
    await assert.rejects(c.resolve(parseReference(`127.0.0.1:${deadPort}/app:v1`)), (e: unknown) => {
      assert.ok(isBerthError(e, 'Unavailable'), String(e));
      assert.ok(e.message.includes(`127.0.0.1:${deadPort}`), e.message);
      return true;
    });
  } finally {
    await c.close();
  }
});

test('plain http only for real loopback names, and no redirect from a remote registry to a loopback port', () => {
  assert.equal(isLoopbackHost('evil.localhost:5000'), false, '*.localhost is whatever DNS says');
  assert.equal(isLoopbackHost('localhost:5000'), true);
  const hosts = new RegistryHosts();
  assert.equal(hosts.endpoints('evil.localhost:5000')[0]!.url.protocol, 'https:');
  assert.throws(() => hosts.checkRedirect(new URL('https://registry.example/v2/x'), new URL('http://127.0.0.1:2375/containers')), /loopback/);
  assert.throws(() => hosts.checkRedirect(new URL('https://registry.example/v2/x'), new URL('http://localhost:8080/')), /loopback/);
  assert.doesNotThrow(() => hosts.checkRedirect(new URL('http://127.0.0.1:5000/v2/x'), new URL('http://127.0.0.1:5001/storage')));
  assert.doesNotThrow(() => hosts.checkRedirect(new URL('https://registry.example/v2/x'), new URL('https://storage.example/blob')));
});
