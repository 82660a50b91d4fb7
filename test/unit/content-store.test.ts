import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ContentStore } from '../../src/core/content/store.js';
import { chunked, sha256, tempDir } from '../helpers/tar.js';

const mt = 'application/octet-stream';

async function newStore(t: import('node:test').TestContext): Promise<ContentStore> {
  const store = new ContentStore(join(await tempDir(t), 'content'));
  await store.init();
  return store;
}

test('a verified blob is stored under its digest and can be read back', async (t) => {
  const store = await newStore(t);
  const data = Buffer.alloc(100_000, 7);
  const desc = { mediaType: mt, digest: sha256(data), size: data.length };
  const info = await store.ingest(desc, chunked(data));
  assert.equal(info.size, data.length);
  assert.ok(await store.has(desc.digest));
  assert.equal((await store.info(desc.digest)).size, data.length);
  assert.deepEqual(await store.readBlob(desc.digest, 1 << 20), data);
  const chunks: Buffer[] = [];
  for await (const c of await store.createReadStream(desc.digest)) chunks.push(c as Buffer);
  assert.deepEqual(Buffer.concat(chunks), data);
  assert.deepEqual(await store.list().then((l) => l.map((b) => b.digest)), [desc.digest]);
  assert.deepEqual(await store.usage(), { size: data.length, inodes: 1 });
  assert.deepEqual(await readdir(join(store.root, 'ingest')), []);
});

test('a digest mismatch is rejected and nothing becomes visible', async (t) => {
  const store = await newStore(t);
  const data = Buffer.from('real bytes');
  const wrong = sha256('other bytes');
  await assert.rejects(
    store.ingest({ mediaType: mt, digest: wrong, size: data.length }, Readable.from([data])),
    (err: Error & { code?: string; kind?: string }) => {
      assert.equal(err.code, 'content.digest_mismatch');
      assert.equal(err.kind, 'FailedPrecondition');
      assert.match(err.message, new RegExp(`expected ${wrong}, got ${sha256(data)}`));
      return true;
    },
  );
  assert.equal(await store.has(wrong), false);
  assert.deepEqual(await readdir(join(store.root, 'ingest')), []);
  assert.deepEqual(await store.list(), []);
});

test('a size mismatch is rejected, also when the source sends too much', async (t) => {
  const store = await newStore(t);
  const data = Buffer.from('0123456789');
  await assert.rejects(store.ingest({ mediaType: mt, digest: sha256(data), size: 5 }, Readable.from([data])), {
    code: 'content.size_mismatch',
  });
  await assert.rejects(store.ingest({ mediaType: mt, digest: sha256(data), size: 11 }, Readable.from([data])), {
    code: 'content.size_mismatch',
  });
  assert.equal(await store.has(sha256(data)), false);
  assert.deepEqual(await readdir(join(store.root, 'ingest')), []);
});

test('init removes ingest leftovers of interrupted writes', async (t) => {
  const store = await newStore(t);
  await writeFile(join(store.root, 'ingest', 'partial'), 'half a layer');
  await mkdir(join(store.root, 'ingest', 'dir'));
  await store.init();
  assert.deepEqual(await readdir(join(store.root, 'ingest')), []);
});

test('a source error aborts the ingest and removes the temp file', async (t) => {
  const store = await newStore(t);
  const data = Buffer.from('abc');
  const source = new Readable({ read() {} });
  source.push(data);
  const p = store.ingest({ mediaType: mt, digest: sha256(data), size: 10 }, source);
  setImmediate(() => source.destroy(new Error('connection reset')));
  await assert.rejects(p, /connection reset/);
  assert.deepEqual(await readdir(join(store.root, 'ingest')), []);
});

test('concurrent writers of the same digest both succeed', async (t) => {
  const store = await newStore(t);
  const data = Buffer.alloc(50_000, 3);
  const desc = { mediaType: mt, digest: sha256(data), size: data.length };
  const res = await Promise.all([store.ingest(desc, chunked(data, 333)), store.ingest(desc, chunked(data, 777))]);
  assert.equal(res.length, 2);
  assert.deepEqual(await store.readBlob(desc.digest, data.length), data);
  assert.equal((await store.list()).length, 1);
});

test('ingestStream tees the bytes and ends the copy only after the digest was verified', async (t) => {
  const store = await newStore(t);
  const data = Buffer.alloc(200_000, 9);
  const good = store.ingestStream({ mediaType: mt, digest: sha256(data), size: data.length }, chunked(data));
  const seen: Buffer[] = [];
  await pipeline(
    good.stream,
    new Writable({
      write(c: Buffer, _e, cb) {
        seen.push(c);
        cb();
      },
    }),
  );
  assert.deepEqual(Buffer.concat(seen), data);
  assert.ok(await store.has(sha256(data)), 'committed before the tee ended');
  await good.done;

  const bad = store.ingestStream({ mediaType: mt, digest: sha256('x'), size: data.length }, chunked(data));
  await assert.rejects(
    pipeline(
      bad.stream,
      new Writable({
        write(_c, _e, cb) {
          cb();
        },
      }),
    ),
    { code: 'content.digest_mismatch' },
  );
  await assert.rejects(bad.done, { code: 'content.digest_mismatch' });
});

test('readBlob refuses blobs over the cap before reading, and unknown digests are NotFound', async (t) => {
  const store = await newStore(t);
  const data = Buffer.alloc(4096, 1);
  await store.writeBlob({ mediaType: mt, digest: sha256(data), size: data.length }, data);
  await assert.rejects(store.readBlob(sha256(data), 4095), { code: 'content.too_large', kind: 'ResourceExhausted' });
  await assert.rejects(store.readBlob(sha256('missing'), 10), { code: 'content.not_found', kind: 'NotFound' });
  await assert.rejects(store.info(sha256('missing')), { kind: 'NotFound' });
  await store.delete(sha256(data));
  await store.delete(sha256(data));
  assert.equal(await store.has(sha256(data)), false);
});

test('malformed digests never become paths', async (t) => {
  const store = await newStore(t);
  for (const d of ['sha256:../../etc/passwd', 'md5:abcd', 'sha256:' + 'A'.repeat(64), 'sha256:abc', 'nodigest']) {
    assert.throws(() => store.blobPath(d), { code: 'content.invalid_digest' }, d);
  }
  assert.equal(await readFile(store.blobPath(sha256('')), 'utf8').catch(() => 'absent'), 'absent');
});
