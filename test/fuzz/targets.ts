/**
 * Fuzz targets: the parsers berth runs on untrusted bytes. Each generator builds a
 * well-formed input of its format with hostile field values, then mutates bytes of it.
 */
import { Readable } from 'node:stream';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isBerthError } from '../../src/errors.js';
import { readTar } from '../../src/core/unpack/tar-reader.js';
import { applyLayer } from '../../src/core/unpack/apply.js';
import { parseManifestOrIndex } from '../../src/core/images/manifest.js';
import { parseImageConfig } from '../../src/core/images/image-config.js';
import { selectManifests } from '../../src/core/images/platform.js';
import { parseReference } from '../../src/core/images/reference.js';
import { FrameDecoder, encodeFrame as encodeTtrpcFrame, type FrameHeader } from '../../src/ttrpc/frame.js';
import { AnyS, TimestampS, decode, encode, schema } from '../../src/ttrpc/pb.js';
import { FrameReader, encodeFrame as encodeSpdyFrame, FrameType, type Frame } from '../../src/streaming/spdy/frames.js';
import { HeaderCompressor, HeaderDecompressor, decodeHeaderBlock, encodeHeaderBlock } from '../../src/streaming/spdy/headers.js';
import { decodeChannelMessage, encodeChannelMessage } from '../../src/streaming/websocket.js';
import { chunks, mutate, type Rng, type Target } from './engine.js';

const isTarError = (e: unknown) => isBerthError(e) || (e instanceof Error && e.constructor === Error && e.message.startsWith('invalid tar: '));

// --- tar ------------------------------------------------------------------------------------

export interface RawEntry {
  name: string;
  type: string;
  body: Buffer;
  linkname?: string;
  mode?: number;
  /** Replaces the octal size field (bad sizes). */
  sizeField?: string;
  prefix?: string;
  magic?: 'ustar' | 'gnu' | 'v7';
}

function octal(b: Buffer, off: number, len: number, v: number): void {
  b.write(
    v
      .toString(8)
      .padStart(len - 1, '0')
      .slice(-(len - 1)) + '\0',
    off,
    len,
    'latin1',
  );
}

function header(e: RawEntry): Buffer {
  const b = Buffer.alloc(512);
  b.write(e.name, 0, 100, 'utf8');
  octal(b, 100, 8, e.mode ?? 0o644);
  octal(b, 108, 8, 0);
  octal(b, 116, 8, 0);
  if (e.sizeField !== undefined) b.write(e.sizeField, 124, 12, 'latin1');
  else octal(b, 124, 12, e.body.length);
  octal(b, 136, 12, 1_600_000_000);
  b.write(e.type, 156, 1, 'latin1');
  if (e.linkname) b.write(e.linkname, 157, 100, 'utf8');
  if (e.magic !== 'v7') b.write(e.magic === 'gnu' ? 'ustar  \0' : 'ustar\x0000', 257, 8, 'latin1');
  if (e.prefix) b.write(e.prefix, 345, 155, 'utf8');
  b.fill(' ', 148, 156);
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return b;
}

function pad(b: Buffer): Buffer {
  return Buffer.concat([b, Buffer.alloc((512 - (b.length % 512)) % 512)]);
}

export function paxRecords(rng: Rng, recs: Record<string, string>, exact = false): Buffer {
  let out = '';
  for (const [k, v] of Object.entries(recs)) {
    const body = ` ${k}=${v}\n`;
    let n = body.length + 1;
    while (String(n).length + body.length !== n) n = String(n).length + body.length;
    // Sometimes a wrong length: the reader must reject, not misparse forever.
    out += `${!exact && rng.bool(0.15) ? rng.interesting() : n}${body}`;
  }
  return Buffer.from(out, 'utf8');
}

export function tarOf(entries: RawEntry[], eof = true): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) parts.push(header(e), pad(e.body));
  if (eof) parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** Names a layer could carry, including ones that try to leave the root. */
function entryName(rng: Rng, escape: boolean): string {
  const base = ['a', 'a/b', 'a/b/c', 'etc/passwd', 'l', 'l/x', 'd/', '.wh.a', 'a/.wh..wh..opq', 'a/.wh.b', 'dev/null'];
  const hostile = ['../outside/x', '/../outside/y', 'a/../../outside/z', 'l/../../outside/w', '/outside/v', './../outside/u'];
  let n = rng.pick(escape && rng.bool(0.4) ? hostile : base);
  if (rng.bool(0.1)) n = rng.str(12);
  if (rng.bool(0.05)) n = 'n/'.repeat(1 + rng.int(60)) + 'leaf';
  return n;
}

function genEntries(rng: Rng, escape: boolean): RawEntry[] {
  const out: RawEntry[] = [];
  const n = 1 + rng.int(10);
  for (let i = 0; i < n; i++) {
    const type = rng.pick(['0', '0', '5', '5', '2', '2', '1', 'x', 'L', 'K', 'g', '3', '4', '6', '7', 'S', 'Z']);
    const name = entryName(rng, escape);
    const e: RawEntry = { name, type, body: Buffer.alloc(0), magic: rng.pick(['ustar', 'gnu', 'v7'] as const) };
    if (type === '0' || type === '7') e.body = rng.bytes(rng.int(3) === 0 ? rng.int(2000) : rng.int(40));
    if (type === '2') e.linkname = rng.pick(['/', '..', '../outside', '/tmp', 'a', '/etc', '../../outside/sentinel', rng.str(8)]);
    if (type === '1') e.linkname = rng.pick(['a', 'etc/passwd', '../outside/sentinel', '/outside/sentinel', 'l/x', rng.str(8)]);
    if (type === 'x' || type === 'g') {
      e.body = paxRecords(rng, {
        [rng.pick(['path', 'linkpath', 'size', 'mtime', 'uid', 'SCHILY.xattr.user.a', 'SCHILY.xattr.security.capability', 'LIBARCHIVE.xattr.x'])]: rng.pick([
          entryName(rng, escape),
          String(rng.interesting()),
          rng.str(20),
          '-1',
          '1e400',
        ]),
      });
    }
    if (type === 'L' || type === 'K') e.body = Buffer.from(entryName(rng, escape) + (rng.bool() ? '\0' : ''), 'utf8');
    if (rng.bool(0.05)) e.sizeField = rng.pick(['\x80\0\0\0\0\0\0\0\0\0\0\x01', '777777777777', '-1', ' 12 ', '\xff'.repeat(12), 'zzzz']);
    if (rng.bool(0.1)) e.mode = rng.pick([0o7777, 0o4755, 0, 0o777777777]);
    if (rng.bool(0.05)) e.prefix = rng.pick(['..', '/', 'a', rng.str(20)]);
    out.push(e);
  }
  return out;
}

export const tarReaderTarget: Target<{ chunks: Buffer[] }> = {
  name: 'tar-reader',
  gen(rng) {
    let tar = tarOf(genEntries(rng, false), rng.bool(0.8));
    if (rng.bool(0.7)) tar = mutate(rng, tar);
    return { chunks: chunks(rng, tar) };
  },
  async run(input) {
    for await (const entry of readTar(Readable.from(input.chunks))) {
      for await (const _ of entry.body) void _;
    }
  },
  expected: isTarError,
};

// --- layer unpacker on a temp root ------------------------------------------------------------

let box = '';
let sentinel = '';
function boxState(): string {
  // Everything under box except the root: the outside dir, its file, and any stray entry.
  const rows: string[] = [];
  for (const e of readdirSync(box).sort()) {
    if (e === 'root') continue;
    const p = join(box, e);
    const st = statSync(p);
    rows.push(`${e}:${st.isDirectory() ? 'd' : 'f'}:${st.mtimeMs}:${st.mode}`);
    if (st.isDirectory())
      for (const f of readdirSync(p).sort()) rows.push(`${e}/${f}:${statSync(join(p, f)).mtimeMs}:${readFileSync(join(p, f)).toString('hex')}`);
  }
  return rows.join('\n');
}
let baseline = '';

export const unpackTarget: Target<{ tar: Buffer; chunks: Buffer[]; mode: 'native' | 'overlay' }> = {
  name: 'unpack',
  setup() {
    box = mkdtempSync(join(tmpdir(), 'berth-fuzz-unpack-'));
    mkdirSync(join(box, 'outside'));
    sentinel = join(box, 'outside', 'sentinel');
    writeFileSync(sentinel, 'host file');
    baseline = boxState();
  },
  teardown() {
    rmSync(box, { recursive: true, force: true });
  },
  gen(rng) {
    let tar = tarOf(genEntries(rng, true));
    if (rng.bool(0.3)) tar = mutate(rng, tar, 1);
    return { tar, chunks: chunks(rng, tar), mode: rng.bool(0.7) ? 'native' : 'overlay' };
  },
  async run(input) {
    const root = join(box, 'root');
    rmSync(root, { recursive: true, force: true });
    mkdirSync(root);
    await applyLayer(Readable.from(input.chunks), root, { mode: input.mode, lowers: [] });
  },
  expected: isBerthError,
  after() {
    const now = boxState();
    if (now !== baseline) return `written outside the root:\n${now}\nwas:\n${baseline}`;
    for (const p of ['/outside', '/v', '/x']) {
      try {
        statSync(p);
        return `${p} exists on the host`;
      } catch {
        /* good */
      }
    }
    return undefined;
  },
};

// --- manifests, indexes, configs, references ----------------------------------------------

const MEDIA = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v1+prettyjws',
  'application/vnd.oci.image.config.v1+json',
  'text/plain',
  '',
];

function jsonValue(rng: Rng, depth = 0): unknown {
  switch (rng.int(depth > 3 ? 5 : 8)) {
    case 0:
      return rng.interesting();
    case 1:
      return rng.str(10);
    case 2:
      return rng.bool();
    case 3:
      return null;
    case 4:
      return `sha256:${rng.bytes(32).toString('hex')}`;
    case 5:
      return Array.from({ length: rng.int(4) }, () => jsonValue(rng, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = rng.int(4); i > 0; i--)
        o[rng.pick(['mediaType', 'digest', 'size', 'platform', 'architecture', 'os', 'variant', 'annotations', '__proto__', 'constructor', rng.str(5)])] =
          jsonValue(rng, depth + 1);
      return o;
    }
  }
}

function descriptor(rng: Rng): unknown {
  const d: Record<string, unknown> = {
    mediaType: rng.pick(MEDIA),
    digest: rng.bool(0.8) ? `sha256:${rng.bytes(32).toString('hex')}` : jsonValue(rng),
    size: rng.bool(0.8) ? rng.int(100000) : jsonValue(rng),
  };
  if (rng.bool(0.5))
    d.platform = rng.bool(0.6)
      ? { architecture: rng.pick(['amd64', 'arm64', 'arm', 'x86_64', '']), os: rng.pick(['linux', 'windows', '']), variant: rng.pick(['v7', 'v8', '']) }
      : jsonValue(rng);
  if (rng.bool(0.3)) d.annotations = jsonValue(rng);
  if (rng.bool(0.2)) d.urls = jsonValue(rng);
  if (rng.bool(0.1)) return jsonValue(rng);
  return d;
}

export const manifestTarget: Target<{ doc: Buffer; media: string; config: Buffer; ref: string }> = {
  name: 'manifest',
  gen(rng) {
    const m: Record<string, unknown> = { schemaVersion: rng.bool(0.8) ? 2 : jsonValue(rng) };
    if (rng.bool(0.8)) m.mediaType = rng.pick(MEDIA);
    if (rng.bool()) {
      m.config = descriptor(rng);
      m.layers = rng.bool(0.9) ? Array.from({ length: rng.int(5) }, () => descriptor(rng)) : jsonValue(rng);
    } else {
      m.manifests = rng.bool(0.9) ? Array.from({ length: rng.int(5) }, () => descriptor(rng)) : jsonValue(rng);
    }
    let doc: Buffer = Buffer.from(JSON.stringify(m));
    if (rng.bool(0.3)) doc = mutate(rng, doc);
    const cfg: Record<string, unknown> = { architecture: rng.pick(['amd64', jsonValue(rng)]), os: rng.pick(['linux', jsonValue(rng)]) };
    if (rng.bool(0.8)) {
      cfg.config = {
        User: rng.pick(['', '0', '1000:1000', 'nobody', rng.str(10), jsonValue(rng)]),
        Env: rng.bool(0.8) ? Array.from({ length: rng.int(4) }, () => rng.pick(['A=b', 'PATH=/bin', '=', 'noeq', rng.str(8)])) : jsonValue(rng),
        Entrypoint: rng.bool(0.8) ? [rng.str(6)] : jsonValue(rng),
        Cmd: jsonValue(rng),
        WorkingDir: rng.pick(['/', 'rel', rng.str(8), jsonValue(rng)]),
        Volumes: rng.bool(0.8) ? { [rng.pick(['/data', 'rel', '', rng.str(6)])]: {} } : jsonValue(rng),
        ExposedPorts: rng.bool(0.8) ? { [rng.pick(['80/tcp', '53/udp', 'x', '99999/tcp'])]: {} } : jsonValue(rng),
        Labels: jsonValue(rng),
        StopSignal: rng.pick(['SIGTERM', '9', 'SIGNOPE', jsonValue(rng)]),
      };
    }
    if (rng.bool(0.5)) cfg.rootfs = { type: 'layers', diff_ids: rng.bool(0.8) ? [`sha256:${rng.bytes(32).toString('hex')}`] : jsonValue(rng) };
    let config: Buffer = Buffer.from(JSON.stringify(cfg));
    if (rng.bool(0.3)) config = mutate(rng, config);
    const refs = [
      'busybox',
      'docker.io/library/busybox:1.36',
      'localhost:5000/a/b@sha256:' + 'a'.repeat(64),
      'UPPER/x',
      'a:b:c',
      ':',
      '@',
      'x@sha256:zz',
      'a'.repeat(300),
      'h:99999/x',
    ];
    let ref = rng.pick(refs);
    if (rng.bool(0.5)) ref = mutate(rng, Buffer.from(ref)).toString('utf8');
    return { doc, media: rng.pick(MEDIA), config, ref };
  },
  run(input) {
    let first: unknown;
    const attempt = (fn: () => void) => {
      try {
        fn();
      } catch (err) {
        if (!isBerthError(err)) throw err;
        first ??= err;
      }
    };
    attempt(() => {
      const r = parseManifestOrIndex(input.doc, input.media, 'fuzz');
      if (r.kind === 'index') selectManifests(r.index.manifests);
    });
    attempt(() => void parseImageConfig(input.config));
    attempt(() => void parseReference(input.ref));
    if (first) throw first;
  },
  expected: isBerthError,
};

// --- ttrpc frames and the lean protobuf decoder -----------------------------------------------

const Inner = schema('fuzz.Inner', [
  [1, 'id', 'string'],
  [2, 'pid', 'uint32'],
  [3, 'status', 'int64'],
]);
const Msg = schema('fuzz.Msg', [
  [1, 'id', 'string'],
  [2, 'n', 'uint32'],
  [3, 'big', 'int64'],
  [4, 'data', 'bytes'],
  [5, 'flag', 'bool'],
  [6, 'items', 'string', 'repeated'],
  [7, 'labels', 'string', 'map'],
  [8, 'any', AnyS],
  [9, 'ts', TimestampS],
  [10, 'inner', Inner, 'repeated'],
  [11, 'nums', 'uint64', 'repeated'],
  [12, 'kind', 'enum'],
  [13, 'i32', 'int32'],
]);

function sampleMsg(rng: Rng): Buffer {
  const m = {
    id: rng.str(12),
    n: rng.int(2 ** 32),
    big: BigInt(rng.int(2 ** 31)) * (rng.bool() ? -1n : 1n),
    data: rng.bytes(rng.int(40)),
    flag: rng.bool(),
    items: Array.from({ length: rng.int(4) }, () => rng.str(6)),
    labels: Object.fromEntries(Array.from({ length: rng.int(3) }, () => [rng.str(5), rng.str(5)])),
    any: rng.bool() ? { typeUrl: 'x', value: rng.bytes(rng.int(20)) } : undefined,
    ts: rng.bool() ? { seconds: BigInt(rng.int(2 ** 31)), nanos: rng.int(1e9) } : undefined,
    inner: Array.from({ length: rng.int(3) }, () => ({ id: rng.str(4), pid: rng.int(65536), status: BigInt(rng.int(256)) })),
    nums: Array.from({ length: rng.int(4) }, () => BigInt(rng.int(2 ** 31))),
    kind: rng.int(5),
    i32: rng.int(2 ** 31) * (rng.bool() ? -1 : 1),
  };
  return Buffer.from(encode(Msg, m));
}

const isPbError = (e: unknown) => isBerthError(e) || (e instanceof Error && e.constructor === Error);

export const pbTarget: Target<Buffer> = {
  name: 'protobuf',
  gen(rng) {
    const b = sampleMsg(rng);
    return rng.bool(0.85) ? mutate(rng, b) : rng.bytes(rng.int(64));
  },
  run(input) {
    decode(Msg, input);
  },
  // pb.ts documents plain Errors (premature EOF, invalid varint, wrong wire type); a
  // RangeError or TypeError would be a bug.
  expected: isPbError,
};

export const ttrpcFrameTarget: Target<{ chunks: Buffer[] }> = {
  name: 'ttrpc-frame',
  gen(rng) {
    const frames: Buffer[] = [];
    for (let i = 1 + rng.int(5); i > 0; i--) frames.push(encodeTtrpcFrame(rng.int(20) * 2 + 1, rng.pick([1, 2, 3, 9]), rng.int(8), sampleMsg(rng)));
    let wire: Buffer = Buffer.concat(frames);
    if (rng.bool(0.7)) wire = mutate(rng, wire);
    return { chunks: chunks(rng, wire) };
  },
  run(input) {
    let failed: unknown;
    const dec = new FrameDecoder({
      frame(_h: FrameHeader, payload: Buffer) {
        try {
          decode(Msg, payload);
        } catch (err) {
          if (!isPbError(err)) throw err;
        }
      },
      oversized() {},
      protocolError(err) {
        failed = err;
      },
    });
    for (const c of input.chunks) dec.push(c);
    if (dec.bufferedBytes > 4 * 1024 * 1024 + 10 + 64 * 1024) throw new Error(`decoder holds ${dec.bufferedBytes} bytes`);
    if (failed && !isBerthError(failed)) throw failed;
  },
  expected: () => false,
};

// --- SPDY frames and header blocks --------------------------------------------------------------

function spdyFrame(rng: Rng, hc: HeaderCompressor): Frame {
  const block = () =>
    hc.compress({ streamtype: rng.pick(['stdin', 'stdout', 'error', 'data', rng.str(5)]), port: String(rng.interesting()), [rng.str(6)]: rng.str(10) });
  switch (rng.int(9)) {
    case 0:
      return { type: 'data', streamId: rng.int(100), flags: rng.int(4), data: rng.bytes(rng.int(100)) };
    case 1:
      return {
        type: 'syn_stream',
        streamId: 1 + 2 * rng.int(50),
        associatedStreamId: 0,
        priority: rng.int(8),
        slot: 0,
        flags: rng.int(4),
        headerBlock: block(),
      };
    case 2:
      return { type: 'syn_reply', streamId: rng.int(100), flags: rng.int(2), headerBlock: block() };
    case 3:
      return { type: 'rst_stream', streamId: rng.int(100), status: rng.int(12) };
    case 4:
      return {
        type: 'settings',
        flags: 0,
        entries: Array.from({ length: rng.int(4) }, () => ({ id: rng.int(9), flags: rng.int(3), value: rng.interesting() >>> 0 })),
      };
    case 5:
      return { type: 'ping', id: rng.u32() };
    case 6:
      return { type: 'goaway', lastGoodStreamId: rng.int(100), status: rng.int(3) };
    case 7:
      return { type: 'headers', streamId: rng.int(100), flags: rng.int(2), headerBlock: block() };
    default:
      return { type: 'window_update', streamId: rng.int(100), delta: rng.interesting() >>> 1 };
  }
}

export const spdyFrameTarget: Target<{ chunks: Buffer[]; max: number }> = {
  name: 'spdy-frame',
  gen(rng) {
    const hc = new HeaderCompressor();
    const frames: Buffer[] = [];
    for (let i = 1 + rng.int(6); i > 0; i--) {
      try {
        frames.push(encodeSpdyFrame(spdyFrame(rng, hc)));
      } catch {
        /* a generated frame the encoder refuses: leave it out */
      }
    }
    let wire: Buffer = Buffer.concat(frames);
    if (rng.bool(0.7)) wire = mutate(rng, wire);
    return { chunks: chunks(rng, wire), max: rng.pick([1 << 20, 64, 16 * 1024]) };
  },
  run(input) {
    const r = new FrameReader(input.max);
    for (const c of input.chunks) r.push(c);
  },
  expected: isBerthError,
};
void FrameType;

export const spdyHeaderTarget: Target<{ block: Buffer; compressed: Buffer[] }> = {
  name: 'spdy-header',
  gen(rng) {
    const headers: Record<string, string> = {};
    for (let i = rng.int(6); i > 0; i--) headers[rng.pick(['streamtype', 'port', 'requestid', ':status', rng.str(6)])] = rng.str(12);
    let block = encodeHeaderBlock(headers);
    if (rng.bool(0.8)) block = mutate(rng, block);
    const hc = new HeaderCompressor();
    const compressed: Buffer[] = [];
    for (let i = 1 + rng.int(3); i > 0; i--) {
      let c = hc.compress(headers);
      if (rng.bool(0.5)) c = mutate(rng, c, 1);
      compressed.push(c);
    }
    return { block, compressed };
  },
  async run(input) {
    let first: unknown;
    try {
      decodeHeaderBlock(input.block);
    } catch (err) {
      if (!isBerthError(err)) throw err;
      first = err;
    }
    const d = new HeaderDecompressor();
    try {
      for (const c of input.compressed) await d.decompress(c);
    } catch (err) {
      if (!isBerthError(err)) throw err;
      first ??= err;
    } finally {
      d.close();
    }
    if (first) throw first;
  },
  expected: isBerthError,
};

// --- WebSocket channel messages -------------------------------------------------------------------

export const wsChannelTarget: Target<{ msg: Buffer; base64: boolean }> = {
  name: 'ws-channel',
  gen(rng) {
    const base64 = rng.bool();
    const enc = encodeChannelMessage(rng.int(256), rng.bytes(rng.int(64)), base64);
    let msg = Buffer.isBuffer(enc) ? enc : Buffer.from(enc, 'latin1');
    if (rng.bool(0.8)) msg = mutate(rng, msg);
    return { msg, base64 };
  },
  run(input) {
    const r = decodeChannelMessage(input.msg, input.base64);
    if (r && (!Number.isInteger(r.channel) || r.channel < 0 || r.channel > 255 || !Buffer.isBuffer(r.data))) {
      throw new Error(`decoded channel ${r.channel}`);
    }
  },
  expected: () => false,
};

export const targets: Target<any>[] = [
  tarReaderTarget,
  unpackTarget,
  manifestTarget,
  pbTarget,
  ttrpcFrameTarget,
  spdyFrameTarget,
  spdyHeaderTarget,
  wsChannelTarget,
];
