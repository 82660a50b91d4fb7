import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RegistryClient, parseChallenges, type RegistryClientOptions } from '../../src/registry/index.js';
import { parseReference } from '../../src/core/images/reference.js';
import { isBerthError } from '../../src/errors.js';
import { setLogSink } from '../../src/log.js';
import { collect, withRegistries, type FakeRegistry } from '../helpers/fake-registry.js';

const fast: RegistryClientOptions = { retry: { attempts: 3, baseDelayMs: 2, maxDelayMs: 10 } };

async function withClient<T>(fn: (c: RegistryClient) => Promise<T>, opts: RegistryClientOptions = {}): Promise<T> {
  const c = new RegistryClient({ ...fast, ...opts });
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

const ref = (reg: FakeRegistry, rest: string) => parseReference(`${reg.host}/${rest}`);

test('WWW-Authenticate challenges are parsed with quoted and bare parameters', () => {
  const ch = parseChallenges(['Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"', 'Basic realm=x']);
  assert.deepEqual(ch, [
    { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull,push' } },
    { scheme: 'basic', params: { realm: 'x' } },
  ]);
  assert.deepEqual(
    parseChallenges(['Basic realm="a", Bearer realm="b"']).map((c) => c.scheme),
    ['basic', 'bearer'],
  );
});

test('an anonymous bearer token is fetched with service and pull scope, then reused', () =>
  withRegistries(1, async ([reg]) => {
    reg!.auth = { kind: 'bearer' };
    const img = reg!.addImage('team/app', 'v1');
    await withClient(async (c) => {
      const desc = await c.resolve(ref(reg!, 'team/app:v1'));
      assert.deepEqual(desc, img.manifest);
      await c.fetchManifest(ref(reg!, 'team/app:v1'), desc);
      assert.deepEqual(await collect(await c.fetchBlob(ref(reg!, 'team/app:v1'), img.layer)), reg!.blobs.get(img.layer.digest));
      const tokens = reg!.tokenRequests();
      assert.equal(tokens.length, 1, 'one token for all requests of the repository');
      assert.equal(tokens[0]!.query.get('service'), 'fake-registry');
      assert.deepEqual(tokens[0]!.query.getAll('scope'), ['repository:team/app:pull']);
      assert.equal(tokens[0]!.headers.authorization, undefined);
      const api = reg!.apiRequests();
      assert.equal(api[0]!.headers.authorization, undefined);
      assert.ok(api.slice(1).every((r) => r.headers.authorization === 'Bearer tok-1'));
    });
  }));

test('bearer tokens are fetched with basic credentials and never shared with anonymous pulls', () =>
  withRegistries(1, async ([reg]) => {
    reg!.auth = { kind: 'bearer', username: 'alice', password: 's3cret' };
    const img = reg!.addImage('app', 'v1');
    await withClient(async (c) => {
      assert.deepEqual(await c.resolve(ref(reg!, 'app:v1'), { username: 'alice', password: 's3cret' }), img.manifest);
      assert.equal(reg!.tokenRequests()[0]!.headers.authorization, 'Basic ' + Buffer.from('alice:s3cret').toString('base64'));
      // Same creds given as the base64 auth field reuse nothing but still work.
      const auth = Buffer.from('alice:s3cret').toString('base64');
      assert.deepEqual(await c.resolve(ref(reg!, 'app:v1'), { auth }), img.manifest);
      // Without credentials the token service refuses: the cached token must not leak over.
      await assert.rejects(c.resolve(ref(reg!, 'app:v1')), (e: unknown) => isBerthError(e, 'Unauthenticated'));
    });
  }));

test('wrong credentials are Unauthenticated naming registry and repository, without the secret', () =>
  withRegistries(1, async ([reg]) => {
    reg!.auth = { kind: 'bearer', username: 'alice', password: 's3cret' };
    reg!.addImage('team/app', 'v1');
    const lines: string[] = [];
    setLogSink((l) => lines.push(l));
    try {
      await withClient(async (c) => {
        await assert.rejects(c.resolve(ref(reg!, 'team/app:v1'), { username: 'alice', password: 'WRONG-pass' }), (e: unknown) => {
          assert.ok(isBerthError(e, 'Unauthenticated'), String(e));
          assert.ok(e.message.includes(reg!.host), e.message);
          assert.ok(e.message.includes('team/app'), e.message);
          assert.ok(!e.message.includes('WRONG-pass'));
          return true;
        });
      });
    } finally {
      setLogSink((l) => process.stderr.write(l + '\n'));
    }
    assert.ok(lines.every((l) => !l.includes('WRONG-pass')));
  }));

test('basic auth challenges are answered with the credentials', () =>
  withRegistries(1, async ([reg]) => {
    reg!.auth = { kind: 'basic', username: 'bob', password: 'pw' };
    const img = reg!.addImage('app', 'v1');
    await withClient(async (c) => {
      assert.deepEqual(await c.resolve(ref(reg!, 'app:v1'), { username: 'bob', password: 'pw' }), img.manifest);
      // Once the scheme is known, later requests authenticate up front.
      await c.fetchManifest(ref(reg!, 'app:v1'), img.manifest, { username: 'bob', password: 'pw' });
      const api = reg!.apiRequests();
      assert.equal(api.length, 3);
      assert.equal(api[2]!.headers.authorization, 'Basic ' + Buffer.from('bob:pw').toString('base64'));
      await assert.rejects(c.resolve(ref(reg!, 'app:v1'), { username: 'bob', password: 'nope' }), (e: unknown) => {
        assert.ok(isBerthError(e, 'Unauthenticated'));
        assert.match(e.message, /rejected the credentials for repository app/);
        return true;
      });
      await assert.rejects(c.resolve(ref(reg!, 'app:v1')), (e: unknown) => isBerthError(e, 'Unauthenticated') && /requires authentication/.test(e.message));
    });
  }));

test('a registryToken is sent as the bearer token directly', () =>
  withRegistries(1, async ([reg]) => {
    reg!.auth = { kind: 'bearer', staticTokens: ['given-token'] };
    const img = reg!.addImage('app', 'v1');
    await withClient(async (c) => {
      assert.deepEqual(await c.resolve(ref(reg!, 'app:v1'), { registryToken: 'given-token' }), img.manifest);
      assert.equal(reg!.tokenRequests().length, 0);
      assert.equal(reg!.apiRequests()[0]!.headers.authorization, 'Bearer given-token');
      await assert.rejects(c.resolve(ref(reg!, 'app:v1'), { registryToken: 'stale' }), (e: unknown) => isBerthError(e, 'Unauthenticated'));
    });
  }));

test('an identity token is exchanged with a refresh_token POST', () =>
  withRegistries(1, async ([reg]) => {
    reg!.auth = { kind: 'bearer', refreshToken: 'refresh-1' };
    const img = reg!.addImage('app', 'v1');
    await withClient(async (c) => {
      assert.deepEqual(await c.resolve(ref(reg!, 'app:v1'), { identityToken: 'refresh-1' }), img.manifest);
      const t = reg!.tokenRequests()[0]!;
      assert.equal(t.method, 'POST');
      const form = new URLSearchParams(t.body);
      assert.equal(form.get('grant_type'), 'refresh_token');
      assert.equal(form.get('refresh_token'), 'refresh-1');
      assert.equal(form.get('service'), 'fake-registry');
      assert.equal(form.get('scope'), 'repository:app:pull');
    });
  }));

test('a 401 challenge from a redirect target is not honoured: the pull secret stays with the registry', () =>
  withRegistries(2, async ([reg, storage]) => {
    reg!.auth = { kind: 'bearer', username: 'alice', password: 's3cret' };
    const img = reg!.addImage('app', 'v1');
    reg!.blobRedirectBase = storage!.url;
    // The redirect target asks for a token from its own realm.
    storage!.intercept = (_req, res, url) => {
      if (!url.pathname.startsWith('/storage/')) return false;
      res.writeHead(401, { 'www-authenticate': `Bearer realm="${storage!.url}/token",service="elsewhere"` });
      res.end();
      return true;
    };
    const creds = { username: 'alice', password: 's3cret', serverAddress: reg!.host };
    await withClient(async (c) => {
      const r = ref(reg!, 'app:v1');
      const desc = await c.resolve(r, creds);
      await assert.rejects(c.fetchBlob(r, img.layer, creds), (e: unknown) => isBerthError(e));
      assert.deepEqual(storage!.tokenRequests(), [], 'no token request to the redirect target');
      assert.ok(
        storage!.requests.every((q) => q.headers.authorization === undefined),
        'no credentials to the redirect target',
      );
      // Later requests to the registry still use the registry's own challenge and token.
      reg!.blobRedirectBase = undefined;
      await c.fetchManifest(r, desc, creds);
      assert.deepEqual(await collect(await c.fetchBlob(r, img.layer, creds)), reg!.blobs.get(img.layer.digest));
      assert.ok(storage!.tokenRequests().length === 0);
    });
  }));

test('a refresh-token POST redirected to another origin is not re-sent there', () =>
  withRegistries(2, async ([reg, other]) => {
    reg!.auth = { kind: 'bearer', refreshToken: 'refresh-1' };
    reg!.addImage('app', 'v1');
    reg!.intercept = (req, res, url) => {
      if (url.pathname !== '/token' || req.method !== 'POST') return false;
      res.writeHead(307, { location: `${other!.url}/token` });
      res.end();
      return true;
    };
    await withClient(async (c) => {
      await assert.rejects(c.resolve(ref(reg!, 'app:v1'), { identityToken: 'refresh-1' }), (e: unknown) => isBerthError(e));
      assert.ok(
        other!.requests.every((q) => !q.body.includes('refresh-1')),
        'the refresh token never reached the other origin',
      );
      assert.deepEqual(
        other!.requests.filter((q) => q.method === 'POST'),
        [],
      );
    });
  }));

test('403 is PermissionDenied naming registry and repository', () =>
  withRegistries(1, async ([reg]) => {
    reg!.intercept = (_req, res) => {
      res.writeHead(403, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'DENIED', message: 'requested access to the resource is denied' }] }));
      return true;
    };
    await withClient(async (c) => {
      await assert.rejects(c.resolve(ref(reg!, 'priv/app:v1')), (e: unknown) => {
        assert.ok(isBerthError(e, 'PermissionDenied'));
        assert.ok(e.message.includes(reg!.host) && e.message.includes('priv/app') && e.message.includes('denied'), e.message);
        return true;
      });
    });
  }));

test('credentials without a server address are not sent to mirrors', () =>
  withRegistries(2, async ([mirror, upstream]) => {
    upstream!.auth = { kind: 'basic', username: 'u', password: 'p' };
    mirror!.auth = { kind: 'basic', username: 'u', password: 'p' };
    const img = upstream!.addImage('app', 'v1');
    const mirrors = { [upstream!.host]: { endpoints: [mirror!.url] } };
    await withClient(
      async (c) => {
        assert.deepEqual(await c.resolve(ref(upstream!, 'app:v1'), { username: 'u', password: 'p' }), img.manifest);
        assert.ok(mirror!.apiRequests().every((r) => r.headers.authorization === undefined));
        // With serverAddress naming the mirror, they go to the mirror only.
        mirror!.addImage('app', 'v1');
        await c.resolve(ref(upstream!, 'app:v1'), { username: 'u', password: 'p', serverAddress: mirror!.url });
        assert.ok(mirror!.apiRequests().some((r) => r.headers.authorization !== undefined));
      },
      { mirrors },
    );
  }));
