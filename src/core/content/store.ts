/**
 * Content-addressable blob store.
 *
 * Layout under `root` (berthd passes `<state root>/content`):
 *   blobs/sha256/<hex>   committed blobs (mode 0444), the file name is the digest
 *   blobs/sha512/<hex>
 *   ingest/<random>      bytes of in-progress writes; leftovers of interrupted pulls are
 *                        removed by init()
 *
 * A blob becomes visible only through an atomic rename after its digest AND size matched the
 * expected descriptor, so a reader never sees partial or unverified content. Concurrent writers
 * of the same digest each use their own ingest file; the last rename wins with identical bytes.
 */
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, open, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { errors, isBerthError } from '../../errors.js';
import type { Descriptor } from './descriptor.js';
import { newHash, parseDigest, type DigestAlgorithm } from './digest.js';
import { syncFilesystem } from './syncfs.js';

export interface ContentInfo {
  digest: string;
  size: number;
  createdAt: Date;
}

export interface Usage {
  /** Bytes of committed blobs. */
  size: number;
  /** Number of committed blobs (one inode each). */
  inodes: number;
}

/** An ingest in progress: read `stream` to get the bytes as they are stored. */
export interface IngestHandle {
  /**
   * The same bytes as the source, passed through while they are written to the store. It ends
   * only after the blob was verified and committed; on a digest/size mismatch it errors instead,
   * so a consumer (e.g. the layer unpacker) never finishes successfully on unverified data.
   */
  stream: Readable;
  /** Resolves once the blob is committed; rejects with the reason it was not. */
  done: Promise<ContentInfo>;
}

const algorithms: DigestAlgorithm[] = ['sha256', 'sha512'];

export class ContentStore {
  readonly root: string;

  constructor(root: string) {
    this.root = root;
  }

  private get ingestDir(): string {
    return join(this.root, 'ingest');
  }

  /** Creates the layout and removes ingest leftovers of interrupted writes. */
  async init(): Promise<void> {
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    await chmod(this.root, 0o700);
    await rm(this.ingestDir, { recursive: true, force: true });
    await mkdir(this.ingestDir, { recursive: true, mode: 0o700 });
    for (const alg of algorithms) await mkdir(join(this.root, 'blobs', alg), { recursive: true, mode: 0o755 });
  }

  /** Path of a committed blob (whether or not it exists). Validates the digest. */
  blobPath(digest: string): string {
    const { algorithm, hex } = parseDigest(digest);
    return join(this.root, 'blobs', algorithm, hex);
  }

  async has(digest: string): Promise<boolean> {
    try {
      await stat(this.blobPath(digest));
      return true;
    } catch (err) {
      if (isBerthError(err)) throw err;
      return false;
    }
  }

  async info(digest: string): Promise<ContentInfo> {
    const path = this.blobPath(digest);
    try {
      const st = await stat(path);
      return { digest, size: st.size, createdAt: st.mtime };
    } catch (err) {
      throw notFoundOr(err, digest);
    }
  }

  /**
   * Reads a whole blob into memory, refusing (before reading a byte) when it is larger than
   * `maxBytes`: manifests, indexes and configs are untrusted and must be bounded.
   */
  async readBlob(digest: string, maxBytes: number): Promise<Buffer> {
    const path = this.blobPath(digest);
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      throw notFoundOr(err, digest);
    }
    try {
      const { size } = await fh.stat();
      if (size > maxBytes) {
        throw errors.resourceExhausted('content.too_large', `blob ${digest} is ${size} bytes, limit is ${maxBytes}`);
      }
      const buf = Buffer.alloc(size);
      let off = 0;
      while (off < size) {
        const { bytesRead } = await fh.read(buf, off, size - off, off);
        if (bytesRead === 0) break;
        off += bytesRead;
      }
      return buf.subarray(0, off);
    } finally {
      await fh.close();
    }
  }

  /** Opens a committed blob for streaming. */
  async createReadStream(digest: string): Promise<Readable> {
    const path = this.blobPath(digest);
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      throw notFoundOr(err, digest);
    }
    // The stream owns the handle and closes it when done or destroyed.
    return fh.createReadStream({ autoClose: true });
  }

  /** Removes a blob; removing one that does not exist is not an error. */
  async delete(digest: string): Promise<void> {
    await rm(this.blobPath(digest), { force: true });
  }

  /** All committed blobs (for garbage collection). */
  async list(): Promise<ContentInfo[]> {
    const out: ContentInfo[] = [];
    for (const alg of algorithms) {
      const dir = join(this.root, 'blobs', alg);
      let names: string[];
      try {
        names = await readdir(dir);
      } catch {
        continue;
      }
      for (const hex of names) {
        const digest = `${alg}:${hex}`;
        try {
          parseDigest(digest);
          const st = await stat(join(dir, hex));
          out.push({ digest, size: st.size, createdAt: st.mtime });
        } catch {
          // A foreign file or a blob deleted meanwhile: not content.
        }
      }
    }
    return out;
  }

  async usage(): Promise<Usage> {
    let size = 0;
    let inodes = 0;
    for (const b of await this.list()) {
      size += b.size;
      inodes += 1;
    }
    return { size, inodes };
  }

  /**
   * Streams `source` into the store, verifying it against `desc`. Returns a pass-through of the
   * bytes (to unpack while downloading) and a promise for the commit. The caller must consume
   * `stream` (or use ingest(), which does), otherwise backpressure stalls the write.
   */
  ingestStream(desc: Descriptor, source: Readable): IngestHandle {
    const { algorithm } = parseDigest(desc.digest);
    if (!Number.isSafeInteger(desc.size) || desc.size < 0) {
      throw errors.invalidArgument('content.invalid_size', `descriptor ${desc.digest} has invalid size ${desc.size}`);
    }
    const tmp = join(this.ingestDir, randomBytes(12).toString('hex'));
    const writer = new IngestWriter(tmp, this.blobPath(desc.digest), desc, algorithm);
    source.on('error', (err) => writer.destroy(err));
    writer.on('close', () => {
      if (!source.readableEnded) source.destroy();
    });
    source.pipe(writer);
    return { stream: writer, done: writer.done };
  }

  /** Streams `source` into the store and resolves once verified and committed. */
  async ingest(desc: Descriptor, source: Readable): Promise<ContentInfo> {
    const h = this.ingestStream(desc, source);
    // Errors surface through `done`; the pass-through copy is discarded.
    h.stream.on('error', () => {});
    h.stream.resume();
    return h.done;
  }

  /**
   * Make every committed blob durable (one syncfs for the store's filesystem). Writers do not
   * fsync each blob; callers flush before anything durable refers to the content.
   */
  async sync(): Promise<void> {
    await syncFilesystem(this.root);
  }

  /** Stores an in-memory blob (manifests, configs), verified like any other write. */
  async writeBlob(desc: Descriptor, data: Uint8Array): Promise<ContentInfo> {
    const { Readable } = await import('node:stream');
    return this.ingest(desc, Readable.from([Buffer.from(data)]));
  }
}

function notFoundOr(err: unknown, digest: string): unknown {
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
    return errors.notFound('content.not_found', `content ${digest} not found`);
  }
  return err;
}

/**
 * Hashes and writes each chunk to the ingest file, then passes it on. Commit (verify,
 * rename) happens in flush, so the readable side ends only after the blob is in place.
 */
const WRITE_BATCH = 1 << 20;

class IngestWriter extends Transform {
  readonly done: Promise<ContentInfo>;
  private resolveDone!: (info: ContentInfo) => void;
  private rejectDone!: (err: unknown) => void;
  private fh: FileHandle | null = null;
  private readonly hash;
  private bytes = 0;
  private committed = false;
  /**
   * Bytes hashed and passed on but not yet written (written in batches, see _transform): one
   * buffer per ingest, reused, so a pull makes no garbage buffer per batch (each one lived
   * through the write, outlived V8's young generation and held memory until a full GC).
   */
  private batch: Buffer | null = null;
  private batched = 0;

  constructor(
    private readonly tmp: string,
    private readonly target: string,
    private readonly desc: Descriptor,
    algorithm: DigestAlgorithm,
  ) {
    super();
    this.hash = newHash(algorithm);
    this.done = new Promise<ContentInfo>((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    // Callers that only consume `stream` still see the error there; avoid unhandled rejections.
    this.done.catch(() => {});
  }

  override _construct(callback: (error?: Error | null) => void): void {
    open(this.tmp, 'wx', 0o600).then(
      (fh) => {
        this.fh = fh;
        callback();
      },
      (err: Error) => callback(err),
    );
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.desc.size) {
      callback(errors.failedPrecondition('content.size_mismatch', `content ${this.desc.digest}: more than the expected ${this.desc.size} bytes received`));
      return;
    }
    this.hash.update(chunk);
    // Written in batches of WRITE_BATCH: each write is a round trip to libuv's thread pool, and
    // a pull's network chunks are small (16-64 KiB). Nothing is visible before commit() anyway.
    // The first chunk goes out at once, so an ingest in progress shows on disk (operators and
    // tests watch ingest/ for that). Chunks are copied into the batch: the caller's chunk is not
    // held once this returns.
    if (this.bytes === chunk.length) {
      this.writeAll(chunk).then(
        () => callback(null, chunk),
        (err: Error) => callback(err),
      );
      return;
    }
    const batch = (this.batch ??= Buffer.allocUnsafe(Math.min(WRITE_BATCH, this.desc.size)));
    if (this.batched + chunk.length < batch.length) {
      chunk.copy(batch, this.batched);
      this.batched += chunk.length;
      callback(null, chunk);
      return;
    }
    this.fill(chunk, batch).then(
      () => callback(null, chunk),
      (err: Error) => callback(err),
    );
  }

  /** Copies `chunk` into the batch, writing the batch out each time it is full. */
  private async fill(chunk: Buffer, batch: Buffer): Promise<void> {
    let off = 0;
    while (off < chunk.length) {
      const n = chunk.copy(batch, this.batched, off);
      off += n;
      this.batched += n;
      if (this.batched === batch.length) await this.writePending();
    }
  }

  private async writePending(): Promise<void> {
    if (this.batched === 0 || !this.batch) return;
    const n = this.batched;
    this.batched = 0;
    await this.writeAll(this.batch.subarray(0, n));
  }

  private async writeAll(buf: Buffer): Promise<void> {
    let off = 0;
    while (off < buf.length) off += (await this.fh!.write(buf, off)).bytesWritten;
  }

  override _flush(callback: TransformCallback): void {
    this.commit().then(
      (info) => {
        this.committed = true;
        this.resolveDone(info);
        callback();
      },
      (err: Error) => callback(err),
    );
  }

  private async commit(): Promise<ContentInfo> {
    await this.writePending();
    const fh = this.fh!;
    const actual = `${this.desc.digest.slice(0, this.desc.digest.indexOf(':'))}:${this.hash.digest('hex')}`;
    if (this.bytes !== this.desc.size) {
      throw errors.failedPrecondition('content.size_mismatch', `content ${this.desc.digest}: expected ${this.desc.size} bytes, got ${this.bytes}`);
    }
    if (actual !== this.desc.digest) {
      throw errors.failedPrecondition('content.digest_mismatch', `content digest mismatch: expected ${this.desc.digest}, got ${actual}`);
    }
    await fh.chmod(0o444);
    await fh.close();
    this.fh = null;
    await rename(this.tmp, this.target);
    return { digest: this.desc.digest, size: this.bytes, createdAt: new Date() };
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    const fh = this.fh;
    this.fh = null;
    const cleanup = async () => {
      if (fh) await fh.close().catch(() => {});
      if (!this.committed) await rm(this.tmp, { force: true });
    };
    cleanup().then(
      () => {
        if (!this.committed) {
          this.rejectDone(err ?? errors.canceled('content.ingest_aborted', `ingest of ${this.desc.digest} aborted`));
        }
        callback(err);
      },
      (e: Error) => callback(err ?? e),
    );
  }
}
