import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RegistryClient, type RegistryClientOptions } from '../../src/registry/index.js';
import { parseReference } from '../../src/core/images/reference.js';
import { isBerthError } from '../../src/errors.js';
import { collect, serveBytes, sha256, withRegistries, type FakeRegistry } from '../helpers/fake-registry.js';

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

test('5xx twice then success is retried transparently', () =>
  withRegistries(1, async ([reg]) => {
    const img = reg!.addImage('app', 'v1');
    let failures = 0;
    reg!.intercept = (_req, res) => {
      if (failures >= 2) return false;
      failures++;
      res.writeHead(failures === 1 ? 500 : 503);
      res.end();
      return true;
    };
    await withClient(async (c) => {
      assert.deepEqual(await c.resolve(ref(reg!, 'app:v1')), img.manifest);
      assert.equal(reg!.apiRequests().length, 3);
    });
  }));

test('retries are bounded and end in Unavailable naming the host', () =>
  withRegistries(1, async ([reg]) => {
    reg!.intercept = (_req, res) => {
      res.writeHead(502);
      res.end();
      return true;
    };
    await withClient(async (c) => {
      await assert.rejects(c.resolve(ref(reg!, 'app:v1')), (e: unknown) => isBerthError(e, 'Unavailable') && e.message.includes(reg!.host));
      assert.equal(reg!.apiRequests().length, 3, 'exactly `attempts` tries');
    });
  }));

test('429 is retried but other 4xx are not', () =>
  withRegistries(1, async ([reg]) => {
    const img = reg!.addImage('app', 'v1');
    let n = 0;
    reg!.intercept = (_req, res) => {
      if (n++ > 0) return false;
      res.writeHead(429, { 'retry-after': '0' });
      res.end();
      return true;
    };
    await withClient(async (c) => {
      assert.deepEqual(await c.resolve(ref(reg!, 'app:v1')), img.manifest);
      assert.equal(reg!.apiRequests().length, 2);
      reg!.requests.length = 0;
      reg!.intercept = (_req, res) => {
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end('{"errors":[{"code":"MANIFEST_INVALID","message":"bad"}]}');
        return true;
      };
      reg!.noHead = true;
      await assert.rejects(c.resolve(ref(reg!, 'app:v1')), (e: unknown) => isBerthError(e) && e.kind !== 'Unavailable' && /HTTP 400/.test(e.message));
      // HEAD 400 falls back to GET once; neither is retried.
      assert.equal(reg!.apiRequests().length, 2);
    });
  }));

test('a connection reset is retried', () =>
  withRegistries(1, async ([reg]) => {
    const img = reg!.addImage('app', 'v1');
    let resets = 0;
    reg!.intercept = (req) => {
      if (resets > 0) return false;
      resets++;
      req.socket.destroy();
      return true;
    };
    await withClient(async (c) => {
      assert.deepEqual(await c.resolve(ref(reg!, 'app:v1')), img.manifest);
      assert.equal(resets, 1);
      assert.equal(reg!.apiRequests().length, 2);
    });
  }));

test('a blob is streamed with exactly its bytes', () =>
  withRegistries(1, async ([reg]) => {
    const img = reg!.addImage('app', 'v1', Buffer.alloc(300_000, 7));
    await withClient(async (c) => {
      const data = await collect(await c.fetchBlob(ref(reg!, 'app:v1'), img.layer));
      assert.equal(sha256(data), img.layer.digest);
      await assert.rejects(c.fetchBlob(ref(reg!, 'app:v1'), { ...img.layer, digest: sha256('absent') }), (e: unknown) => {
        assert.ok(isBerthError(e, 'NotFound'));
        assert.ok(e.message.includes(reg!.host));
        return true;
      });
    });
  }));

test('a blob redirect to another host drops the Authorization header', () =>
  withRegistries(2, async ([reg, storage]) => {
    reg!.auth = { kind: 'bearer' };
    const img = reg!.addImage('app', 'v1');
    reg!.blobRedirectBase = storage!.url;
    storage!.intercept = (req, res, url) => {
      const digest = url.pathname.replace('/storage/', '');
      serveBytes(req, res, reg!.blobs.get(digest)!);
      return true;
    };
    await withClient(async (c) => {
      const data = await collect(await c.fetchBlob(ref(reg!, 'app:v1'), img.layer));
      assert.deepEqual(data, reg!.blobs.get(img.layer.digest));
      const blobReqs = reg!.apiRequests().filter((r) => r.path.includes('/blobs/'));
      assert.equal(blobReqs.at(-1)!.headers.authorization, 'Bearer tok-1', 'the registry itself got the token');
      assert.equal(storage!.requests.length, 1);
      assert.equal(storage!.requests[0]!.headers.authorization, undefined, 'storage host must not see the token');
    });
  }));

test('a redirect to plain http on a non-loopback host is refused without connecting', () =>
  withRegistries(1, async ([reg]) => {
    const img = reg!.addImage('app', 'v1');
    reg!.blobRedirectBase = 'http://storage.example.invalid';
    await withClient(async (c) => {
      await assert.rejects(c.fetchBlob(ref(reg!, 'app:v1'), img.layer), (e: unknown) => {
        assert.ok(isBerthError(e, 'PermissionDenied'), String(e));
        assert.match(e.message, /storage\.example\.invalid.*plain http/);
        return true;
      });
    });
  }));

test('a blob with more bytes than its descriptor is rejected', () =>
  withRegistries(1, async ([reg]) => {
    const img = reg!.addImage('app', 'v1', Buffer.alloc(1000, 1));
    await withClient(async (c) => {
      // Declared up front: refused before the body is read.
      reg!.blobs.set(img.layer.digest, Buffer.alloc(1001, 1));
      await assert.rejects(
        c.fetchBlob(ref(reg!, 'app:v1'), img.layer),
        (e: unknown) => isBerthError(e, 'FailedPrecondition') && /too many bytes/.test(e.message),
      );
      // Not declared (chunked): the stream fails once it passes the size.
      reg!.intercept = (_req, res, url) => {
        if (!url.pathname.includes('/blobs/')) return false;
        res.writeHead(200);
        res.write(Buffer.alloc(800, 1));
        res.end(Buffer.alloc(800, 1));
        return true;
      };
      const s = await c.fetchBlob(ref(reg!, 'app:v1'), img.layer);
      await assert.rejects(collect(s), (e: unknown) => isBerthError(e, 'FailedPrecondition') && /too many bytes/.test(e.message));
    });
  }));

test('a blob with fewer bytes than its descriptor is rejected', () =>
  withRegistries(1, async ([reg]) => {
    const img = reg!.addImage('app', 'v1', Buffer.alloc(1000, 1));
    reg!.intercept = (req, res, url) => {
      if (!url.pathname.includes('/blobs/')) return false;
      if (req.headers.range) {
        res.writeHead(416);
        res.end();
        return true;
      }
      res.writeHead(200);
      res.end(Buffer.alloc(600, 1));
      return true;
    };
    await withClient(async (c) => {
      const s = await c.fetchBlob(ref(reg!, 'app:v1'), img.layer);
      await assert.rejects(collect(s), (e: unknown) => isBerthError(e, 'FailedPrecondition') && /600 of 1000/.test(e.message));
    });
  }));

test('a blob download broken mid-stream resumes with a Range request', () =>
  withRegistries(1, async ([reg]) => {
    const content = Buffer.alloc(200_000);
    for (let i = 0; i < content.length; i++) content[i] = (i * 31) & 0xff;
    const img = reg!.addImage('app', 'v1', content);
    let broken = 0;
    reg!.intercept = (req, res, url) => {
      if (!url.pathname.includes('/blobs/') || broken > 0) return false;
      broken++;
      res.writeHead(200, { 'content-length': String(content.length) });
      res.write(content.subarray(0, 70_000), () => setTimeout(() => req.socket.destroy(), 20));
      return true;
    };
    await withClient(async (c) => {
      const data = await collect(await c.fetchBlob(ref(reg!, 'app:v1'), img.layer));
      assert.equal(data.length, content.length);
      assert.ok(data.equals(content));
      const blobReqs = reg!.apiRequests().filter((r) => r.path.includes('/blobs/'));
      assert.equal(blobReqs.length, 2);
      assert.match(String(blobReqs[1]!.headers.range), /^bytes=\d+-$/);
    });
  }));

test('an aborted signal cancels the pull', () =>
  withRegistries(1, async ([reg]) => {
    const img = reg!.addImage('app', 'v1');
    const ac = new AbortController();
    ac.abort();
    await withClient(async (c) => {
      await assert.rejects(c.fetchBlob(ref(reg!, 'app:v1'), img.layer, undefined, ac.signal), (e: unknown) => isBerthError(e, 'Canceled'));
      assert.equal(reg!.apiRequests().length, 0);
    });
  }));
