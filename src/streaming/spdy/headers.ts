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
 * Inflates incoming header blocks through one long-lived inflate context (the peer compresses
 * all its blocks as one zlib stream). Node's streaming zlib is asynchronous (it runs on the
 * thread pool), so the connection awaits each block before handling the next frame.
 *
 * Every frame carries exactly one block, ended with the sender's sync flush: once inflate has
 * consumed the frame's bytes (the write callback), its output must be exactly one complete
 * block. The budget holds whatever the state: output counts against the block of the frame
 * being inflated, more than MAX_HEADER_BLOCK of it (a zlib bomb), or any output while no frame
 * is being inflated, stops the inflate context at once (destroyed: the thread pool does no
 * more work on it) and fails the connection. Output is appended to one buffer grown by
 * doubling, and the block's end is found by an incremental scan: linear in the output.
 */
export class HeaderDecompressor {
  private readonly z = zlib.createInflate({ dictionary: SPDY3_DICTIONARY, chunkSize: 16 * 1024 });
  private failure: Error | undefined;
  private current: { resolve: (h: SpdyHeaders) => void; reject: (e: Error) => void } | undefined;
  /** Output of the current frame: `out[0..len)`. */
  private out = Buffer.alloc(0);
  private len = 0;
  /** Incremental scan of the block: fields (names and values) still to skip, -1 before the count. */
  private fieldsLeft = -1;
  private scanned = 0;
  private total = 0;

  constructor() {
    this.z.on('data', (chunk: Buffer) => this.onOutput(chunk));
    this.z.on('error', (err: Error) => this.fail(this.wrapped(err)));
  }

  /** Bytes this context has inflated so far (all blocks). */
  get inflated(): number {
    return this.total;
  }

  decompress(compressed: Buffer): Promise<SpdyHeaders> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.current) return Promise.reject(errors.internal('spdy.inflate_busy', 'header blocks must be inflated one at a time'));
    return new Promise<SpdyHeaders>((resolve, reject) => {
      this.current = { resolve, reject };
      this.out = Buffer.alloc(0);
      this.len = 0;
      this.fieldsLeft = -1;
      this.scanned = 0;
      this.z.write(compressed, () => this.onConsumed());
    });
  }

  close(): void {
    this.current = undefined;
    this.z.destroy();
  }

  private onOutput(chunk: Buffer): void {
    if (this.failure) return;
    this.total += chunk.length;
    if (!this.current) {
      this.fail(errors.invalidArgument('spdy.bad_header_block', 'header data inflates past the end of its block'));
      return;
    }
    if (this.len + chunk.length > MAX_HEADER_BLOCK) {
      this.fail(errors.invalidArgument('spdy.header_block_too_large', `header block inflates to more than ${MAX_HEADER_BLOCK} bytes`));
      return;
    }
    if (this.len + chunk.length > this.out.length) {
      const grown = Buffer.allocUnsafe(Math.min(MAX_HEADER_BLOCK, Math.max(2 * this.out.length, this.len + chunk.length, 1024)));
      this.out.copy(grown, 0, 0, this.len);
      this.out = grown;
    }
    chunk.copy(this.out, this.len);
    this.len += chunk.length;
  }

  /** Inflate has consumed the frame's bytes: its output must be one whole block, nothing more. */
  private onConsumed(): void {
    const cur = this.current;
    if (this.failure || !cur) return;
    const n = this.blockLength();
    if (n === undefined) {
      this.fail(errors.invalidArgument('spdy.bad_header_block', 'header block is incomplete in its frame'));
      return;
    }
    if (n !== this.len) {
      this.fail(errors.invalidArgument('spdy.bad_header_block', 'header data inflates past the end of its block'));
      return;
    }
    this.current = undefined;
    try {
      cur.resolve(decodeHeaderBlock(this.out.subarray(0, n)));
    } catch (err) {
      cur.reject(err as Error);
    }
  }

  /** Length of the complete block at the start of the output, else undefined (scan resumes where it stopped). */
  private blockLength(): number | undefined {
    const b = this.out;
    if (this.fieldsLeft < 0) {
      if (this.len < 4) return undefined;
      this.fieldsLeft = 2 * b.readUInt32BE(0);
      this.scanned = 4;
    }
    while (this.fieldsLeft > 0) {
      if (this.scanned + 4 > this.len) return undefined;
      const end = this.scanned + 4 + b.readUInt32BE(this.scanned);
      if (end > this.len) return undefined;
      this.scanned = end;
      this.fieldsLeft -= 1;
    }
    return this.scanned;
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    // No more inflation for this connection: a bomb costs at most one chunk past the budget.
    this.z.destroy();
    const cur = this.current;
    this.current = undefined;
    cur?.reject(err);
  }

  private wrapped(err: Error): Error {
    return errors.invalidArgument('spdy.bad_header_block', `header block does not inflate: ${err.message}`, err);
  }
}
