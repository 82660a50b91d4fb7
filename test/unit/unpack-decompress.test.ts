import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Writable } from 'node:stream';
import { applyLayer } from '../../src/core/unpack/apply.js';
import { compressionOf, decompress } from '../../src/core/unpack/decompress.js';
import { buildTar, chunked, gzip, sha256, zstd, tempDir } from '../helpers/tar.js';

async function collect(data: Buffer, compression: 'gzip' | 'zstd' | 'none'): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(
    chunked(data, 777),
    decompress(compression),
    new Writable({
      write(c: Buffer, _e, cb) {
        out.push(c);
        cb();
      },
    }),
  );
  return Buffer.concat(out);
}

test('gzip, zstd and uncompressed layers decompress to the same tar and diffID', async (t) => {
  const payload = Buffer.from(Array.from({ length: 200_000 }, (_, i) => i % 251));
  const layer = await buildTar([{ name: 'bin/data', content: payload }]);
  for (const [compression, blob] of [
    ['gzip', gzip(layer)],
    ['zstd', zstd(layer)],
    ['none', layer],
  ] as const) {
    assert.deepEqual(await collect(blob, compression), layer, compression);
    const root = await tempDir(t);
    const res = await applyLayer(chunked(blob, 4096).pipe(decompress(compression)), root);
    assert.equal(res.diffID, sha256(layer), compression);
    assert.deepEqual(await readFile(join(root, 'bin/data')), payload);
  }
});

test('corrupt zstd data is rejected', async () => {
  await assert.rejects(collect(Buffer.from('definitely not zstd data'), 'zstd'), { code: 'unpack.bad_zstd' });
});

test('compressionOf maps OCI and Docker layer media types', () => {
  assert.equal(compressionOf('application/vnd.oci.image.layer.v1.tar+gzip'), 'gzip');
  assert.equal(compressionOf('application/vnd.docker.image.rootfs.diff.tar.gzip'), 'gzip');
  assert.equal(compressionOf('application/vnd.oci.image.layer.v1.tar+zstd'), 'zstd');
  assert.equal(compressionOf('application/vnd.oci.image.layer.v1.tar'), 'none');
  assert.throws(() => compressionOf('application/json'), { code: 'unpack.unsupported_media_type' });
});
