import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RegistryClient, type RegistryClientOptions } from '../../src/registry/index.js';
import { parseReference } from '../../src/core/images/reference.js';
import { MediaType } from '../../src/core/images/mediatypes.js';
import { isBerthError } from '../../src/errors.js';
import { sha256, withRegistries, type FakeRegistry } from '../helpers/fake-registry.js';

const fast: RegistryClientOptions = { retry: { attempts: 3, baseDelayMs: 2, maxDelayMs: 10 } };

async function withClient<T>(opts: RegistryClientOptions, fn: (c: RegistryClient) => Promise<T>): Promise<T> {
  const c = new RegistryClient({ ...fast, ...opts });
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

function ref(reg: FakeRegistry, rest: string) {
  return parseReference(`${reg.host}/${rest}`);
}

test('a tag resolves to the manifest digest with a HEAD request', () =>
  withRegistries(1, async ([reg]) => {
    const img = reg!.addImage('app', 'v1');
    await withClient({}, async (c) => {
      const { descriptor, endpoint } = await c.resolveWithEndpoint(ref(reg!, 'app:v1'));
      assert.deepEqual(descriptor, img.manifest);
      assert.equal(endpoint.host, reg!.host);
      const api = reg!.apiRequests();
      assert.deepEqual(
        api.map((r) => `${r.method} ${r.path}`),
        ['HEAD /v2/app/manifests/v1'],
      );
      const accept = String(api[0]!.headers.accept);
      for (const t of [MediaType.ociIndex, MediaType.ociManifest, MediaType.dockerManifestList, MediaType.dockerManifest]) assert.ok(accept.includes(t), t);
      const bytes = await c.fetchManifest(ref(reg!, 'app:v1'), descriptor);
      assert.deepEqual(bytes, img.manifestBytes);
    });
  }));

test('indexes and docker manifest lists resolve with their media types', () =>
  withRegistries(1, async ([reg]) => {
    const img = reg!.addImage('multi', 'only');
    const index = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [{ ...img.manifest, platform: { os: 'linux', architecture: 'amd64' } }] }),
    );
    const list = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.dockerManifestList, manifests: [img.manifest] }));
    const iDesc = reg!.addManifest('multi', index, MediaType.ociIndex, ['oci']);
    const lDesc = reg!.addManifest('multi', list, `${MediaType.dockerManifestList}; charset=utf-8`, ['docker']);
    await withClient({}, async (c) => {
      assert.deepEqual(await c.resolve(ref(reg!, 'multi:oci')), iDesc);
      const got = await c.resolve(ref(reg!, 'multi:docker'));
      assert.equal(got.mediaType, MediaType.dockerManifestList);
      assert.equal(got.digest, lDesc.digest);
      assert.deepEqual(await c.fetchManifest(ref(reg!, 'multi:docker'), got), list);
    });
  }));

test('without HEAD support or digest header the manifest is fetched and hashed', () =>
  withRegistries(1, async ([reg]) => {
    reg!.noHead = true;
    reg!.omitDigestHeader = true;
    const img = reg!.addImage('app', 'v1');
    await withClient({}, async (c) => {
      assert.deepEqual(await c.resolve(ref(reg!, 'app:v1')), img.manifest);
      assert.deepEqual(
        reg!.apiRequests().map((r) => r.method),
        ['HEAD', 'GET'],
      );
    });
  }));

test('a digest reference resolves and a registry answering another digest is rejected', () =>
  withRegistries(1, async ([reg]) => {
    const img = reg!.addImage('app', 'v1');
    await withClient({}, async (c) => {
      assert.deepEqual(await c.resolve(ref(reg!, `app@${img.manifest.digest}`)), img.manifest);
      // A registry that serves different bytes under a digest is caught by fetchManifest.
      const evil = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: img.config, layers: [] }));
      const stored = reg!.manifests.get('app')!.get(img.manifest.digest)!;
      stored.data = Buffer.concat([evil, Buffer.alloc(img.manifest.size - evil.length, 32)]).subarray(0, img.manifest.size);
      await assert.rejects(c.fetchManifest(ref(reg!, 'app:v1'), img.manifest), (e: unknown) => {
        assert.ok(isBerthError(e, 'FailedPrecondition'));
        assert.equal(e.code, 'registry.digest_mismatch');
        return true;
      });
    });
  }));

test('an unknown tag or repository is NotFound naming the reference and the registry', () =>
  withRegistries(1, async ([reg]) => {
    reg!.addImage('app', 'v1');
    await withClient({}, async (c) => {
      for (const r of ['app:nope', 'other:v1']) {
        await assert.rejects(c.resolve(ref(reg!, r)), (e: unknown) => {
          assert.ok(isBerthError(e, 'NotFound'), String(e));
          assert.equal(e.code, 'image.not_found');
          assert.ok(e.message.includes(`${reg!.host}/${r}`), e.message);
          assert.ok(e.message.includes(`registry ${reg!.host}`), e.message);
          return true;
        });
      }
      const missing = { mediaType: MediaType.ociManifest, digest: sha256('nothing'), size: 7 };
      await assert.rejects(
        c.fetchManifest(ref(reg!, 'app:v1'), missing),
        (e: unknown) => isBerthError(e, 'NotFound') && /MANIFEST_UNKNOWN|manifest unknown/.test(e.message),
      );
    });
  }));

test('an oversized manifest is rejected before it is fully read', () =>
  withRegistries(1, async ([reg]) => {
    let written = 0;
    let serving = 0;
    const total = 64 * 1024 * 1024;
    reg!.intercept = async (req, res, url) => {
      if (!url.pathname.includes('/manifests/')) return false;
      // HEAD: claims a small size so the client goes on to GET; GET: streams without length.
      if (req.method === 'HEAD') {
        res.writeHead(200, { 'content-type': MediaType.ociManifest, 'content-length': '100', 'docker-content-digest': sha256('x') });
        res.end();
        return true;
      }
      res.writeHead(200, { 'content-type': MediaType.ociManifest });
      const chunk = Buffer.alloc(64 * 1024, 0x20);
      serving++;
      res.once('close', () => serving--);
      while (written < total && !res.destroyed) {
        written += chunk.length;
        if (!res.write(chunk))
          await new Promise((r) => {
            res.once('drain', r);
            res.once('close', r);
          });
      }
      res.end();
      return true;
    };
    await withClient({ maxManifestBytes: 1024 * 1024 }, async (c) => {
      const big = { mediaType: MediaType.ociManifest, digest: sha256('x'), size: 1024 * 1024 };
      await assert.rejects(
        c.fetchManifest(ref(reg!, 'app:v1'), big),
        (e: unknown) => isBerthError(e, 'FailedPrecondition') || isBerthError(e, 'ResourceExhausted'),
      );
      const tooBig = { ...big, size: 5 * 1024 * 1024 };
      await assert.rejects(c.fetchManifest(ref(reg!, 'app:v1'), tooBig), (e: unknown) => isBerthError(e, 'ResourceExhausted'));
      // Counted once the server's responses are over (the client hung up, or all was sent).
      for (let i = 0; i < 1000 && serving > 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(serving, 0, 'the responses ended');
      assert.ok(written < 16 * 1024 * 1024, `server wrote ${written} bytes`);
    });
  }));

test('a manifest whose Content-Length exceeds the cap is refused without reading', () =>
  withRegistries(1, async ([reg]) => {
    reg!.intercept = (req, res, url) => {
      if (!url.pathname.includes('/manifests/')) return false;
      res.writeHead(200, { 'content-type': MediaType.ociManifest, 'content-length': String(8 * 1024 * 1024), 'docker-content-digest': sha256('y') });
      if (req.method === 'HEAD') res.end();
      else res.write(Buffer.alloc(1024)); // never finishes: the client must not wait for it
      return true;
    };
    await withClient({ maxManifestBytes: 4 * 1024 * 1024 }, async (c) => {
      await assert.rejects(c.resolve(ref(reg!, 'app:v1')), (e: unknown) => {
        assert.ok(isBerthError(e, 'ResourceExhausted'));
        assert.match(e.message, /limit/);
        return true;
      });
      reg!.intercept = (req, res, url) => {
        if (!url.pathname.includes('/manifests/')) return false;
        res.writeHead(200, { 'content-type': MediaType.ociManifest, 'content-length': String(8 * 1024 * 1024) });
        res.write(Buffer.alloc(1024));
        return true;
      };
      reg!.noHead = true;
      await assert.rejects(c.fetchManifest(ref(reg!, 'app:v1'), { mediaType: MediaType.ociManifest, digest: sha256('y'), size: 1000 }), (e: unknown) =>
        isBerthError(e, 'FailedPrecondition'),
      );
    });
  }));

test('schema 1 manifests are refused clearly', () =>
  withRegistries(1, async ([reg]) => {
    reg!.addManifest('old', Buffer.from('{"schemaVersion":1}'), MediaType.dockerSchema1SignedManifest, ['v1']);
    await withClient({}, async (c) => {
      await assert.rejects(c.resolve(ref(reg!, 'old:v1')), (e: unknown) => isBerthError(e, 'Unimplemented') && /schema 1/.test(e.message));
    });
  }));
