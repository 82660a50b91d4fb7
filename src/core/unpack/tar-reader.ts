/**
 * A streaming tar reader (ustar, GNU and PAX) over an async iterable of buffers.
 *
 * Written for the unpacker instead of tar-stream: it keeps PAX values as bytes (tar-stream
 * decodes them as UTF-8, which mangles binary extended attributes such as
 * security.capability), and it hands out file bodies as views of the input chunks, without the
 * per-entry stream objects. Semantics otherwise follow tar-stream's, which the unpacker used
 * before: checksums are verified, the whole input is read (and
 * hashed), per-entry PAX records override the header (path, linkpath, size) on top of global
 * ones, GNU long names/links apply to the next entry, unknown type flags come out as `null`.
 * Where tar-stream and Go's archive/tar (containerd, image scanners) disagree, this follows Go:
 * parsing ends at the two zero blocks that close an archive, and links, devices, fifos and
 * directories never carry data.
 */

export type TarType = 'file' | 'link' | 'symlink' | 'character-device' | 'block-device' | 'directory' | 'fifo' | 'contiguous-file';

export interface TarHeader {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: Date;
  type: TarType | null;
  linkname: string | null;
  devmajor: number;
  devminor: number;
  /** PAX records (values decoded as UTF-8), as tar-stream gave them. */
  pax: Record<string, string> | null;
  /** The same PAX records with their values as raw bytes. */
  paxBytes: Map<string, Buffer> | null;
}

export interface TarEntry {
  header: TarHeader;
  /** The entry's data; skipped automatically when the next entry is requested. */
  body: AsyncIterable<Buffer>;
}

/** Long-name and PAX records larger than this are rejected (they are held in memory). */
export const MAX_META_BYTES = 1 << 20;
/**
 * Most records one PAX header may hold. Global records apply to every later entry, so they are
 * capped much lower: a huge global header must not cost work per entry (unpack time stays
 * linear in the layer's size). Real archives carry a handful (a comment, a few xattrs).
 */
export const MAX_PAX_RECORDS = 1024;
export const MAX_GLOBAL_PAX_RECORDS = 64;

const BLOCK = 512;
const EMPTY = Buffer.alloc(0);

function tarError(msg: string): Error {
  return new Error(`invalid tar: ${msg}`);
}

/** Pulls bytes from the chunk iterator, handing out views where it can. */
class ByteReader {
  private buf: Buffer = EMPTY;
  private pos = 0;

  constructor(private readonly it: AsyncIterator<Buffer | Uint8Array>) {}

  /** Up to `max` (> 0) bytes as a view of the current chunk; null at the end of the input. */
  async some(max: number): Promise<Buffer | null> {
    while (this.pos >= this.buf.length) {
      const r = await this.it.next();
      if (r.done) return null;
      const c = r.value;
      this.buf = Buffer.isBuffer(c) ? c : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
      this.pos = 0;
    }
    const n = Math.min(max, this.buf.length - this.pos);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** Exactly `n` bytes; null when the input ends before the first byte; throws when mid-way. */
  async exact(n: number): Promise<Buffer | null> {
    const first = await this.some(n);
    if (first === null || first.length === n) return first;
    const parts = [first];
    let got = first.length;
    while (got < n) {
      const more = await this.some(n - got);
      if (more === null) throw tarError('unexpected end of data');
      parts.push(more);
      got += more.length;
    }
    return Buffer.concat(parts, n);
  }

  async skip(n: number): Promise<void> {
    while (n > 0) {
      const c = await this.some(n);
      if (c === null) throw tarError('unexpected end of data');
      n -= c.length;
    }
  }
}

function str(b: Buffer, off: number, len: number): string {
  let end = b.indexOf(0, off);
  if (end < 0 || end > off + len) end = off + len;
  return b.toString('utf8', off, end);
}

/** An octal field (leading spaces/NULs allowed) or a base-256 one (high bit set). */
function num(b: Buffer, off: number, len: number): number {
  if (b[off]! & 0x80) {
    const negative = b[off] === 0xff;
    if (!negative && b[off] !== 0x80) return NaN;
    let v = 0;
    for (let i = off + 1; i < off + len; i++) v = v * 256 + (negative ? 0xff - b[i]! : b[i]!);
    return negative ? -v : v;
  }
  let i = off;
  const end = off + len;
  while (i < end && (b[i] === 0x20 || b[i] === 0)) i++;
  let v = 0;
  let digits = 0;
  for (; i < end; i++) {
    const c = b[i]!;
    if (c < 0x30 || c > 0x37) break;
    v = v * 8 + (c - 0x30);
    digits++;
  }
  return digits === 0 ? 0 : v;
}

function checksum(b: Buffer): number {
  let sum = 8 * 0x20; // the checksum field itself counts as spaces
  for (let i = 0; i < 148; i++) sum += b[i]!;
  for (let i = 156; i < BLOCK; i++) sum += b[i]!;
  return sum;
}

const TYPES: Record<number, TarType> = {
  0: 'file',
  0x30: 'file',
  0x31: 'link',
  0x32: 'symlink',
  0x33: 'character-device',
  0x34: 'block-device',
  0x35: 'directory',
  0x36: 'fifo',
  0x37: 'contiguous-file',
};

const PAX = 0x78; // 'x'
const PAX_GLOBAL = 0x67; // 'g'
const GNU_LONGLINK = 0x4b; // 'K'
const GNU_LONGNAME = 0x4c; // 'L'
const GNU_LONGNAME_OLD = 0x4e; // 'N'

function isUstar(b: Buffer): boolean {
  return b.toString('latin1', 257, 263) === 'ustar\0';
}

function isGnu(b: Buffer): boolean {
  return b.toString('latin1', 257, 265) === 'ustar  \0';
}

/** PAX records: "LEN key=value\n", LEN counting the whole record. Malformed tails are ignored. */
export function parsePax(buf: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let off = 0;
  while (off < buf.length) {
    const sp = buf.indexOf(0x20, off);
    if (sp < 0) break;
    const len = Number(buf.toString('latin1', off, sp));
    if (!Number.isSafeInteger(len) || len <= sp - off + 1 || off + len > buf.length) break;
    const rec = buf.subarray(sp + 1, off + len - 1); // without the trailing newline
    const eq = rec.indexOf(0x3d);
    if (eq < 0) break;
    out.set(rec.toString('utf8', 0, eq), rec.subarray(eq + 1));
    off += len;
  }
  return out;
}

/** Decodes one header block; null for a zero block. */
function decodeHeader(b: Buffer): { header: TarHeader; flag: number } | null {
  const sum = checksum(b);
  if (sum === 8 * 0x20 && b.every((x) => x === 0)) return null;
  if (sum !== num(b, 148, 8)) throw tarError('header checksum mismatch (corrupt, or still compressed?)');
  const flag = b[156]!;
  let name = str(b, 0, 100);
  if (isUstar(b)) {
    if (b[345] !== 0) name = `${str(b, 345, 155)}/${name}`;
  } else if (!isGnu(b)) {
    throw tarError('header of unknown format');
  }
  let type = TYPES[flag] ?? null;
  // Old tars mark directories with a trailing slash only.
  if (flag === 0 && name.endsWith('/')) type = 'directory';
  return {
    flag,
    header: {
      name,
      mode: num(b, 100, 8),
      uid: num(b, 108, 8),
      gid: num(b, 116, 8),
      size: num(b, 124, 12),
      mtime: new Date(1000 * num(b, 136, 12)),
      type,
      linkname: b[157] === 0 ? null : str(b, 157, 100),
      devmajor: num(b, 329, 8),
      devminor: num(b, 337, 8),
      pax: null,
      paxBytes: null,
    },
  };
}

const padding = (size: number): number => (BLOCK - (size % BLOCK)) % BLOCK;

function textOf(records: Map<string, Buffer>): Record<string, string> {
  const text: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [k, v] of records) text[k] = v.toString('utf8');
  return text;
}

/** The entries of a tar stream, in order. Consume each body before asking for the next entry. */
export async function* readTar(source: AsyncIterable<Buffer | Uint8Array>): AsyncGenerator<TarEntry> {
  const r = new ByteReader(source[Symbol.asyncIterator]());
  let globalPax: Map<string, Buffer> | null = null;
  let pax: Map<string, Buffer> | null = null;
  let longName: string | null = null;
  let longLink: string | null = null;

  let globalText: Record<string, string> | null = null;
  for (;;) {
    const block = await r.exact(BLOCK);
    if (block === null) return;
    const decoded = decodeHeader(block);
    if (decoded === null) {
      // End of archive: two zero blocks. Nothing after them is an entry (as Go's archive/tar
      // reads it, so scanners and berth see the same files); the rest is still read, for the
      // layer digest. A lone zero block followed by a header is corrupt.
      const next = await r.exact(BLOCK);
      if (next === null) return;
      if (decodeHeader(next) !== null) throw tarError('a single zero block before a header');
      while ((await r.some(1 << 16)) !== null);
      return;
    }
    const { header: h, flag } = decoded;
    if (!(h.size >= 0) || !Number.isSafeInteger(h.size)) throw tarError(`bad size in the header of ${JSON.stringify(h.name)}`);

    if (flag === PAX || flag === PAX_GLOBAL || flag === GNU_LONGNAME || flag === GNU_LONGNAME_OLD || flag === GNU_LONGLINK) {
      if (h.size > MAX_META_BYTES) throw tarError(`extended header of ${h.size} bytes (limit ${MAX_META_BYTES})`);
      const data = h.size === 0 ? EMPTY : await r.exact(h.size);
      if (data === null) throw tarError('unexpected end of data');
      await r.skip(padding(h.size));
      if (flag === PAX || flag === PAX_GLOBAL) {
        const records = parsePax(data);
        const limit = flag === PAX ? MAX_PAX_RECORDS : MAX_GLOBAL_PAX_RECORDS;
        if (records.size > limit) throw tarError(`${flag === PAX ? 'PAX' : 'global PAX'} header with ${records.size} records (limit ${limit})`);
        if (flag === PAX) pax = records;
        else {
          globalPax = records.size > 0 ? records : null;
          globalText = globalPax && textOf(globalPax);
        }
      } else if (flag === GNU_LONGLINK) longLink = str(data, 0, data.length);
      else longName = str(data, 0, data.length);
      continue;
    }

    if (longName !== null) h.name = longName;
    if (longLink !== null) h.linkname = longLink;
    longName = longLink = null;
    // Per-entry records override global ones; without per-entry records the global ones are
    // shared as they are (no per-entry copy).
    const records = pax === null ? globalPax : globalPax === null ? pax : new Map([...globalPax, ...pax]);
    if (records !== null) {
      const text = pax === null ? globalText! : textOf(records);
      if (text.path) h.name = text.path;
      if (text.linkpath) h.linkname = text.linkpath;
      if (text.size) {
        h.size = parseInt(text.size, 10);
        if (!(h.size >= 0) || !Number.isSafeInteger(h.size)) throw tarError(`bad PAX size for ${JSON.stringify(h.name)}`);
      }
      h.pax = text;
      h.paxBytes = records;
      pax = null;
    }

    // Links, devices, fifos and directories carry no data whatever their size field says (as
    // Go's archive/tar reads them): a size there must not swallow the next header.
    const dataBytes = h.type === 'file' || h.type === 'contiguous-file' || h.type === null ? h.size : 0;
    let remaining = dataBytes;
    async function* body(): AsyncGenerator<Buffer> {
      while (remaining > 0) {
        const c = await r.some(remaining);
        if (c === null) throw tarError('unexpected end of data');
        remaining -= c.length;
        yield c;
      }
    }
    yield { header: h, body: body() };
    // Whatever the consumer left unread, then the block padding.
    await r.skip(remaining + padding(dataBytes));
  }
}
