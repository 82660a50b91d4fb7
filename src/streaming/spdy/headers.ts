/**
 * SPDY/3 header blocks: the uncompressed name/value encoding and the zlib contexts that carry
 * them. Each direction of a connection has exactly one deflate (or inflate) context seeded with
 * the SPDY dictionary; every header block is one sync-flushed chunk of that continuous stream,
 * so blocks must be compressed and decompressed strictly in frame order.
 */
import zlib from 'node:zlib';
import { errors } from '../../errors.js';
import { SPDY3_DICTIONARY } from './dictionary.js';

/** Header names are lowercase; several values of one name are joined by NUL per the spec. */
export type SpdyHeaders = Record<string, string>;

/** Upper bound for one decompressed header block (guards against zlib bombs). */
export const MAX_HEADER_BLOCK = 256 * 1024;

export function encodeHeaderBlock(headers: SpdyHeaders): Buffer {
  const entries = Object.entries(headers);
  const parts: Buffer[] = [u32(entries.length)];
  for (const [name, value] of entries) {
    const n = Buffer.from(name.toLowerCase(), 'utf8');
    const v = Buffer.from(value, 'utf8');
    parts.push(u32(n.length), n, u32(v.length), v);
  }
  return Buffer.concat(parts);
}

export function decodeHeaderBlock(block: Buffer): SpdyHeaders {
  const bad = (msg: string) => errors.invalidArgument('spdy.bad_header_block', msg);
  let off = 0;
  const read = (): Buffer => {
    if (off + 4 > block.length) throw bad('truncated header block');
    const len = block.readUInt32BE(off);
    off += 4;
    if (off + len > block.length) throw bad('header length runs past the block');
    const out = block.subarray(off, off + len);
    off += len;
    return out;
  };
  if (block.length < 4) throw bad('truncated header block');
  const count = block.readUInt32BE(0);
  off = 4;
  // Each pair needs at least 8 bytes: reject absurd counts before looping.
  if (count > (block.length - 4) / 8) throw bad(`header count ${count} does not fit the block`);
  const headers: SpdyHeaders = Object.create(null) as SpdyHeaders;
  for (let i = 0; i < count; i++) {
    const name = read().toString('utf8');
    const value = read().toString('utf8');
    if (name.length === 0) throw bad('empty header name');
    if (name !== name.toLowerCase()) throw bad(`header name ${JSON.stringify(name)} is not lowercase`);
    if (name in headers) throw bad(`duplicate header ${JSON.stringify(name)}`);
    headers[name] = value;
  }
  if (off !== block.length) throw bad('trailing bytes after header block');
  return headers;
}

function u32(v: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(v >>> 0, 0);
  return b;
}

/** zlib stream header: CMF 0x78 (deflate, 32 KiB window), FLG 0xbb (FDICT set, default level). */
const ZLIB_HEADER = Buffer.from([0x78, 0xbb]);

/**
 * Compresses outgoing header blocks.
 *
 * The peer inflates all our blocks as one zlib stream seeded with the SPDY dictionary. We send
 * the zlib header once, then for every block a raw-deflate segment produced synchronously by a
 * fresh compressor and ended with a sync flush. Such a segment never refers back to earlier
 * output, so it is a valid continuation of the stream; being synchronous keeps header frames in
 * order with data frames without an async write queue.
 *
 * The segment must end the way zlib's own sync flush ends (a compressed block followed by an
 * empty stored block): Go's flate reader, used by kubectl via spdystream, only hands out a
 * block's bytes without first trying to read the next block header when the block is a
 * Huffman block, and a read past the end of the available input breaks its stream for good.
 * Plain stored blocks therefore work for the first header block only.
 */
export class HeaderCompressor {
  private started = false;

  compress(headers: SpdyHeaders): Buffer {
    const segment = zlib.deflateRawSync(encodeHeaderBlock(headers), { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    if (this.started) return segment;
    this.started = true;
    const dictId = Buffer.allocUnsafe(4);
    dictId.writeUInt32BE(adler32(SPDY3_DICTIONARY), 0);
    return Buffer.concat([ZLIB_HEADER, dictId, segment]);
  }

  close(): void {}
}

export function adler32(data: Buffer): number {
  let a = 1;
  let b = 0;
  for (const byte of data) {
    a = (a + byte) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}

/**
 * Byte length of the header block at the start of `buf` once all of it is there, else
 * undefined. Lets the decompressor tell when an inflated block is complete without relying
 * on when Node's asynchronous zlib stream emits its output.
 */
export function completeBlockLength(buf: Buffer): number | undefined {
  if (buf.length < 4) return undefined;
  const count = buf.readUInt32BE(0);
  let off = 4;
  for (let i = 0; i < 2 * count; i++) {
    if (off + 4 > buf.length) return undefined;
    off += 4 + buf.readUInt32BE(off);
    if (off > buf.length) return undefined;
  }
  return off;
}

/**
 * Inflates incoming header blocks through one long-lived inflate context (the peer compresses
 * all its blocks as one zlib stream). Node's streaming zlib is asynchronous, so the connection
 * awaits each block before handling the next frame. Every block ends with the sender's sync
 * flush, so all of its bytes come out of inflate eventually; we wait until they form one
 * complete block (bounded by a timeout and a size cap).
 */
export class HeaderDecompressor {
  private readonly z = zlib.createInflate({ dictionary: SPDY3_DICTIONARY });
  private pending: Buffer = Buffer.alloc(0);
  private failure: Error | undefined;
  private notify: (() => void) | undefined;

  constructor(private readonly timeoutMs = 10_000) {
    this.z.on('data', (chunk: Buffer) => {
      this.pending = Buffer.concat([this.pending, chunk]);
      this.notify?.();
    });
    this.z.on('error', (err: Error) => {
      this.failure = err;
      this.notify?.();
    });
  }

  async decompress(compressed: Buffer): Promise<SpdyHeaders> {
    if (this.failure) throw this.wrapped(this.failure);
    this.z.write(compressed);
    const length = await new Promise<number>((resolve, reject) => {
      const check = () => {
        if (this.failure) return finish(() => reject(this.wrapped(this.failure as Error)));
        if (this.pending.length > MAX_HEADER_BLOCK) {
          return finish(() => reject(errors.invalidArgument('spdy.header_block_too_large', `header block inflates to more than ${MAX_HEADER_BLOCK} bytes`)));
        }
        const n = completeBlockLength(this.pending);
        if (n !== undefined) finish(() => resolve(n));
      };
      const finish = (then: () => void) => {
        clearTimeout(timer);
        this.notify = undefined;
        then();
      };
      const timer = setTimeout(() => finish(() => reject(errors.invalidArgument('spdy.bad_header_block', 'header block did not inflate to a complete block'))), this.timeoutMs);
      this.notify = check;
      check();
    });
    const raw = this.pending.subarray(0, length);
    this.pending = this.pending.subarray(length);
    return decodeHeaderBlock(raw);
  }

  close(): void {
    this.notify = undefined;
    this.z.close();
  }

  private wrapped(err: Error): Error {
    return errors.invalidArgument('spdy.bad_header_block', `header block does not inflate: ${err.message}`, err);
  }
}
