import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { ContentStore } from '../../src/core/content/store.js';
import { chainIDs } from '../../src/core/snapshots/chainid.js';
import { NativeSnapshotter } from '../../src/core/snapshots/native.js';
import { OverlaySnapshotter } from '../../src/core/snapshots/overlay.js';
import { decompress, decompressStream } from '../../src/core/unpack/decompress.js';
import { unpackLayer } from '../../src/core/unpack/unpack-layer.js';
import { buildTar, chunked, gzip, sha256, tempDir } from '../helpers/tar.js';

test('unpackLayer commits a chain, is idempotent and verifies the diffID', async (t) => {
  const sn = new NativeSnapshotter(await tempDir(t));
  await sn.init();
  t.after(() => sn.close());
  const l1 = await buildTar([
    { name: 'etc/', type: 'directory' },
    { name: 'etc/os', content: 'v1' },
    { name: 'gone', content: 'x' },
  ]);
  const l2 = await buildTar([{ name: 'etc/os', content: 'v2' }, { name: '.wh.gone' }]);
  const [c1, c2] = chainIDs([sha256(l1), sha256(l2)]);

  const r1 = await unpackLayer(sn, { chainID: c1!, tarStream: Readable.from([l1]), expectedDiffID: sha256(l1) });
  assert.deepEqual(r1, { chainID: c1, diffID: sha256(l1), bytes: l1.length, existed: false });
  const r2 = await unpackLayer(sn, { chainID: c2!, parentChainID: c1!, tarStream: Readable.from([l2]) });
  assert.equal(r2.diffID, sha256(l2));
  const again = await unpackLayer(sn, { chainID: c2!, parentChainID: c1!, tarStream: Readable.from([l2]) });
  assert.equal(again.existed, true);
  assert.equal(again.diffID, sha256(l2));
  assert.deepEqual((await sn.list()).map((i) => i.key).sort(), [c1, c2].sort());

  await sn.view('rootfs', c2);
  const root = (await sn.mounts('rootfs'))[0]!.source;
  assert.equal(await readFile(join(root, 'etc/os'), 'utf8'), 'v2');
  assert.deepEqual((await readdir(root)).sort(), ['etc']);

  const bad = await buildTar([{ name: 'x', content: 'y' }]);
  await assert.rejects(unpackLayer(sn, { chainID: sha256('other'), parentChainID: c2!, tarStream: Readable.from([bad]), expectedDiffID: sha256('nope') }), {
    code: 'unpack.diffid_mismatch',
  });
  assert.deepEqual((await sn.list()).map((i) => i.key).sort(), [c1, c2, 'rootfs'].sort(), 'failed unpack left nothing');
});

test('a layer is stored and unpacked from one download, and a corrupt blob leaves no snapshot', async (t) => {
  const dir = await tempDir(t);
  const store = new ContentStore(join(dir, 'content'));
  await store.init();
  const sn = new OverlaySnapshotter(join(dir, 'snap'));
  await sn.init();
  t.after(() => sn.close());

  const layer = await buildTar([{ name: 'bin/sh', content: 'shell', mode: 0o755 }]);
  const blob = gzip(layer);
  const desc = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(blob), size: blob.length };
  const h = store.ingestStream(desc, chunked(blob, 100));
  const [res] = await Promise.all([unpackLayer(sn, { chainID: sha256(layer), tarStream: h.stream.pipe(decompress('gzip')) }), h.done]);
  assert.equal(res.diffID, sha256(layer));
  assert.ok(await store.has(desc.digest));
  const target = join(sn.root, 'snapshots');
  assert.equal((await readdir(target)).length, 1);

  // Same bytes announced under a wrong digest: the unpack must fail, not commit.
  const wrong = { ...desc, digest: sha256('different') };
  const h2 = store.ingestStream(wrong, chunked(blob, 100));
  const tarStream = decompressStream(h2.stream, 'gzip');
  await assert.rejects(unpackLayer(sn, { chainID: sha256('chain-2'), tarStream }), { code: 'content.digest_mismatch' });
  await assert.rejects(h2.done);
  assert.deepEqual(
    (await sn.list()).map((i) => i.key),
    [sha256(layer)],
  );
});

test('a decompression bomb is stopped at the layer size cap, on the main thread and in a worker', async (t) => {
  const { gzipSync } = await import('node:zlib');
  const { Readable: R } = await import('node:stream');
  const { applyLayer: apply } = await import('../../src/core/unpack/apply.js');
  const { decompressStream } = await import('../../src/core/unpack/decompress.js');
  const { UnpackPool } = await import('../../src/core/unpack/pool.js');
  const { buildTar: build, tempDir: temp } = await import('../helpers/tar.js');
  const { statSync, mkdirSync: mk } = await import('node:fs');
  const { join: j } = await import('node:path');
  const blob = gzipSync(await build([{ name: 'zeros', content: Buffer.alloc(32 << 20) }]));
  assert.ok(blob.length < 100_000);
  const dir = await temp(t);
  mk(j(dir, 'main'));
  await assert.rejects(apply(decompressStream(R.from([blob]), 'gzip'), j(dir, 'main'), { maxBytes: 4 << 20 }), { code: 'unpack.layer_too_large' });
  assert.ok(statSync(j(dir, 'main', 'zeros')).size <= 5 << 20, 'writing stopped near the cap');
  const pool = new UnpackPool({ size: 1, idleMs: 50 });
  t.after(() => pool.close());
  mk(j(dir, 'worker'));
  await assert.rejects(pool.reserve().extract({ source: R.from([blob]), compression: 'gzip', dir: j(dir, 'worker'), mode: 'native', maxBytes: 4 << 20 }), {
    code: 'unpack.layer_too_large',
  });
});
