/**
 * Decompression of layer blobs into a plain tar stream. gzip uses node:zlib; zstd uses fzstd's
 * streaming decoder (Node 20's zlib has no zstd); uncompressed layers pass through.
 */
import { PassThrough, Transform, pipeline, type Readable, type TransformCallback } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { Decompress } from 'fzstd';
import { errors } from '../../errors.js';

export type Compression = 'gzip' | 'zstd' | 'none';

/** Compression of a layer by its media type (OCI and Docker schema 2 layer types). */
export function compressionOf(mediaType: string): Compression {
  switch (mediaType) {
    case 'application/vnd.oci.image.layer.v1.tar':
    case 'application/vnd.oci.image.layer.nondistributable.v1.tar':
    case 'application/vnd.docker.image.rootfs.diff.tar':
      return 'none';
    case 'application/vnd.oci.image.layer.v1.tar+gzip':
    case 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip':
    case 'application/vnd.docker.image.rootfs.diff.tar.gzip':
    case 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip':
      return 'gzip';
    case 'application/vnd.oci.image.layer.v1.tar+zstd':
    case 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd':
      return 'zstd';
    default:
      throw errors.invalidArgument('unpack.unsupported_media_type', `unsupported layer media type "${mediaType}"`);
  }
}

/** A Transform from compressed bytes to the uncompressed tar stream. */
export function decompress(compression: Compression, opts: { chunkSize?: number } = {}): Transform {
  switch (compression) {
    case 'gzip':
      return createGunzip(opts.chunkSize ? { chunkSize: opts.chunkSize } : {});
    case 'zstd':
      return new ZstdDecompressStream();
    case 'none':
      return new PassThrough();
  }
}

/**
 * `source` decompressed, with errors propagated both ways (unlike .pipe()): a failing source
 * (e.g. a digest mismatch from ContentStore.ingestStream) errors the returned stream, and
 * destroying the returned stream destroys the source.
 */
export function decompressStream(source: Readable, compression: Compression): Readable {
  return pipeline(source, decompress(compression), () => {});
}

class ZstdDecompressStream extends Transform {
  private readonly dec: Decompress;

  constructor() {
    super();
    this.dec = new Decompress((data) => {
      // Copy: the decoder may reuse its output window for later chunks.
      if (data.length > 0) this.push(Buffer.from(data));
    });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    try {
      this.dec.push(chunk);
      callback();
    } catch (err) {
      callback(errors.invalidArgument('unpack.bad_zstd', `invalid zstd data: ${(err as Error).message}`, err));
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.dec.push(new Uint8Array(0), true);
      callback();
    } catch (err) {
      callback(errors.invalidArgument('unpack.bad_zstd', `invalid zstd data: ${(err as Error).message}`, err));
    }
  }
}
