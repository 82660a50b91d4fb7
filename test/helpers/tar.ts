/**
 * Builders for layer tars in tests: tar-stream's pack for ordinary entries plus a raw GNU
 * long-name encoder (tar-stream writes long names as PAX, never as GNU 'L' records).
 */
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import tar from 'tar-stream';

export interface TarEntry {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo';
  content?: string | Buffer;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: Date;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  pax?: Record<string, string>;
}

/** Builds an uncompressed tar from entries (in order). */
export async function buildTar(entries: TarEntry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const done = new Promise<void>((resolve, reject) => {
    pack.on('data', (c: unknown) => chunks.push(c as Buffer));
    pack.on('end', () => resolve());
    pack.on('error', reject);
  });
  for (const e of entries) {
    const type = e.type ?? 'file';
    const content = e.content === undefined ? undefined : Buffer.from(e.content);
    const header = {
      name: e.name,
      type,
      mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644),
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      mtime: e.mtime ?? new Date(1_600_000_000_000),
      linkname: e.linkname,
      devmajor: e.devmajor,
      devminor: e.devminor,
      pax: e.pax,
      size: type === 'file' ? (content?.length ?? 0) : 0,
    };
    await new Promise<void>((resolve, reject) => {
      pack.entry(header, type === 'file' ? (content ?? Buffer.alloc(0)) : (undefined as unknown as string), (err) => (err ? reject(err) : resolve()));
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

function octal(buf: Buffer, off: number, len: number, value: number): void {
  buf.write(value.toString(8).padStart(len - 1, '0') + '\0', off, len, 'latin1');
}

/** One raw 512-byte GNU-format header (magic "ustar  "). */
export function gnuHeader(name: string, typeflag: string, size: number, mode = 0o644, linkname = ''): Buffer {
  const b = Buffer.alloc(512);
  b.write(name.slice(0, 100), 0, 100, 'utf8');
  b.write(linkname.slice(0, 100), 157, 100, 'utf8');
  octal(b, 100, 8, mode);
  octal(b, 108, 8, 0);
  octal(b, 116, 8, 0);
  octal(b, 124, 12, size);
  octal(b, 136, 12, 1_600_000_000);
  b.write(typeflag, 156, 1, 'latin1');
  b.write('ustar  \0', 257, 8, 'latin1');
  b.fill(' ', 148, 156);
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return b;
}

function padded(data: Buffer): Buffer {
  const pad = (512 - (data.length % 512)) % 512;
  return Buffer.concat([data, Buffer.alloc(pad)]);
}

/** A tar with one regular file whose long name is carried by a GNU 'L' record. */
export function gnuLongNameTar(longName: string, content: string): Buffer {
  const nameBuf = Buffer.from(longName + '\0');
  const data = Buffer.from(content);
  return Buffer.concat([
    gnuHeader('././@LongLink', 'L', nameBuf.length),
    padded(nameBuf),
    gnuHeader(longName.slice(0, 99), '0', data.length),
    padded(data),
    Buffer.alloc(1024),
  ]);
}

export function gzip(data: Buffer): Buffer {
  return gzipSync(data);
}

/** zstd-compresses with the zstd CLI (tests only). */
export function zstd(data: Buffer): Buffer {
  return execFileSync('zstd', ['-q', '-c', '-'], { input: data });
}

export function sha256(data: Buffer | string): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

/** A Readable delivering `data` in small chunks (exercises streaming paths). */
export function chunked(data: Buffer, size = 1000): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) parts.push(data.subarray(i, i + size));
  return Readable.from(parts);
}

/** A fresh temp dir removed after the test. */
export async function tempDir(t: TestContext, prefix = 'berth-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}
