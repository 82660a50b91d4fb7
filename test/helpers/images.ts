/**
 * Fixture images built in code (no docker engine here): layer tars made with tar-stream,
 * compressed with zlib (gzip), the `zstd` CLI, or left plain; image configs; OCI and Docker
 * schema2 manifests; OCI indexes and Docker manifest lists.
 *
 * Everything is deterministic (fixed mtimes, uid/gid, seeded content), so digests are stable
 * across runs, except the hostile fixtures whose escape targets carry a per-process name.
 * Built blobs live in one temp dir per process (removed at exit) and each fixture is built once
 * per process.
 */
import { createHash, createCipheriv, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { spawnSync } from 'node:child_process';
import { createGzip } from 'node:zlib';
import tar from 'tar-stream';
import { pushBlob, pushManifest, type PushAuth, type PushTarget } from './oci-push.js';

export const MediaType = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

export type Compression = 'gzip' | 'zstd' | 'none';
export type ManifestFormat = 'oci' | 'docker';

/** One tar entry. `path` is written into the tar header exactly as given (hostile ones too). */
export type LayerEntry =
  | { type: 'file'; path: string; content: Buffer | string; mode?: number; uid?: number; gid?: number }
  /** File content streamed from a seeded generator (for big files). */
  | { type: 'generated'; path: string; size: number; seed: string; mode?: number }
  | { type: 'dir'; path: string; mode?: number; uid?: number; gid?: number }
  | { type: 'symlink'; path: string; target: string }
  | { type: 'hardlink'; path: string; target: string };

export interface BlobFile {
  digest: string;
  size: number;
  mediaType: string;
  path: string;
}

export interface LayerBlob extends BlobFile {
  diffId: string;
  uncompressedSize: number;
  compression: Compression;
}

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
}

export interface ImageConfigSpec {
  User?: string;
  Env?: string[];
  Entrypoint?: string[];
  Cmd?: string[];
  WorkingDir?: string;
  Volumes?: string[];
  ExposedPorts?: string[];
  StopSignal?: string;
  Labels?: Record<string, string>;
}

/** What a hostile fixture tries to do on the host; tests assert none of it happened. */
export interface HostileExpectation {
  /** Host paths an unpacker must never create. */
  mustNotExist: string[];
  /** Host files an unpacker must never hard-link into the rootfs. */
  mustNotLink: string[];
}

export interface FixtureManifest {
  kind: 'manifest';
  mediaType: string;
  bytes: Buffer;
  digest: string;
  size: number;
  platform: Platform;
  config: BlobFile;
  configJson: Record<string, unknown>;
  layers: LayerBlob[];
  hostile?: HostileExpectation;
}

export interface FixtureIndex {
  kind: 'index';
  mediaType: string;
  bytes: Buffer;
  digest: string;
  size: number;
  manifests: FixtureManifest[];
}

export type FixtureImage = FixtureManifest | FixtureIndex;

const FIXED_MTIME = new Date('2024-01-01T00:00:00Z');
const CREATED = '2024-01-01T00:00:00Z';
const AMD64: Platform = { architecture: 'amd64', os: 'linux' };

// ---------------------------------------------------------------- blob cache (per process)

let cacheDir: string | undefined;

function blobDir(): string {
  if (cacheDir) return cacheDir;
  cacheDir = process.env.BERTH_FIXTURE_CACHE ?? mkdtempSync(join(tmpdir(), 'berth-fixtures-'));
  mkdirSync(cacheDir, { recursive: true });
  if (!process.env.BERTH_FIXTURE_CACHE) {
    const dir = cacheDir;
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  return cacheDir;
}

/** Directory holding built blobs (named by hex digest). */
export function fixtureCacheDir(): string {
  return blobDir();
}

const sha256 = (b: Buffer): string => 'sha256:' + createHash('sha256').update(b).digest('hex');

function storeBuffer(data: Buffer, mediaType: string): BlobFile {
  const digest = sha256(data);
  const path = join(blobDir(), digest.slice(7));
  if (!existsSync(path)) writeFileSync(path, data);
  return { digest, size: data.length, mediaType, path };
}

/** Passes bytes through while hashing and counting them. */
class HashTap extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }
  private result: string | undefined;
  digest(): string {
    this.result ??= 'sha256:' + this.hash.digest('hex');
    return this.result;
  }
}

// ---------------------------------------------------------------- deterministic content

/** A deterministic byte generator (AES-128-CTR keystream keyed by the seed): fast and seedable. */
export class SeededBytes {
  private readonly cipher;
  constructor(seed: string) {
    const key = createHash('sha256').update(seed).digest();
    this.cipher = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
  }
  next(n: number): Buffer {
    return this.cipher.update(Buffer.alloc(n));
  }
  /** A number in [0, bound). */
  int(bound: number): number {
    return this.next(4).readUInt32BE(0) % bound;
  }
}

/**
 * Content of generated files: 3 of every 4 64 KiB blocks are random (incompressible), the 4th is
 * repeated text, so compression ratios resemble real binaries rather than all-or-nothing.
 */
function* generatedChunks(seed: string, size: number): Generator<Buffer> {
  const rng = new SeededBytes(seed);
  const block = 64 * 1024;
  const text = Buffer.from('berth fixture filler text 0123456789 '.repeat(Math.ceil(block / 37))).subarray(0, block);
  let left = size;
  let i = 0;
  while (left > 0) {
    const n = Math.min(block, left);
    yield i % 4 === 3 ? text.subarray(0, n) : rng.next(n);
    left -= n;
    i++;
  }
}

// ---------------------------------------------------------------- layers

function addEntry(pack: tar.Pack, e: LayerEntry): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const done = (err?: Error | null): void => (err ? reject(err) : resolve());
    const base = { name: e.path, mtime: FIXED_MTIME, uid: 0, gid: 0, uname: '', gname: '' };
    switch (e.type) {
      case 'file':
        pack.entry(
          { ...base, type: 'file', mode: e.mode ?? 0o644, uid: e.uid ?? 0, gid: e.gid ?? 0 },
          typeof e.content === 'string' ? Buffer.from(e.content) : e.content,
          done,
        );
        return;
      case 'dir':
        pack.entry({ ...base, type: 'directory', mode: e.mode ?? 0o755, uid: e.uid ?? 0, gid: e.gid ?? 0 }, done);
        return;
      case 'symlink':
        pack.entry({ ...base, type: 'symlink', mode: 0o777, linkname: e.target }, done);
        return;
      case 'hardlink':
        pack.entry({ ...base, type: 'link', mode: 0o644, linkname: e.target }, done);
        return;
      case 'generated': {
        const sink = pack.entry({ ...base, type: 'file', mode: e.mode ?? 0o644, size: e.size }, done);
        const chunks = generatedChunks(e.seed, e.size);
        // Respect back-pressure: the pack only accepts more once the consumer drained it.
        const pump = (): void => {
          for (;;) {
            const r = chunks.next();
            if (r.done) {
              sink.end(() => undefined);
              return;
            }
            if (!sink.write(r.value)) {
              sink.once('drain', pump);
              return;
            }
          }
        };
        pump();
        return;
      }
    }
  });
}

export interface LayerOptions {
  compression: Compression;
  /** gzip level (default 6). */
  level?: number;
  /** Docker media types instead of OCI ones. */
  format?: ManifestFormat;
}

function layerMediaType(compression: Compression, format: ManifestFormat): string {
  if (format === 'docker') {
    if (compression === 'zstd') throw new Error('Docker schema2 has no zstd layer media type');
    return compression === 'gzip' ? MediaType.dockerLayerGzip : MediaType.dockerLayer;
  }
  return compression === 'gzip' ? MediaType.ociLayerGzip : compression === 'zstd' ? MediaType.ociLayerZstd : MediaType.ociLayer;
}

const layerCache = new Map<string, Promise<LayerBlob>>();

/** Builds a layer blob from entries; with `cacheKey` the same layer is built once per process. */
export function buildLayer(entries: Iterable<LayerEntry> | AsyncIterable<LayerEntry>, opts: LayerOptions, cacheKey?: string): Promise<LayerBlob> {
  if (cacheKey === undefined) return buildLayerNow(entries, opts);
  const key = `${cacheKey}|${opts.compression}|${opts.level ?? 6}|${opts.format ?? 'oci'}`;
  let p = layerCache.get(key);
  if (!p) {
    p = buildLayerNow(entries, opts);
    layerCache.set(key, p);
  }
  return p;
}

async function buildLayerNow(entries: Iterable<LayerEntry> | AsyncIterable<LayerEntry>, opts: LayerOptions): Promise<LayerBlob> {
  const dir = blobDir();
  const tmp = join(dir, `tmp-${randomBytes(6).toString('hex')}`);
  const pack = tar.pack();
  const producer = (async (): Promise<void> => {
    try {
      for await (const e of entries) await addEntry(pack, e);
      pack.finalize();
    } catch (err) {
      pack.destroy(err as Error);
      throw err;
    }
  })();
  const diff = new HashTap();
  let comp: HashTap = diff;
  if (opts.compression === 'gzip') {
    comp = new HashTap();
    await pipeline(pack, diff, createGzip({ level: opts.level ?? 6 }), comp, createWriteStream(tmp));
  } else {
    await pipeline(pack, diff, createWriteStream(tmp));
  }
  await producer;
  let digest: string;
  let size: number;
  let file = tmp;
  if (opts.compression === 'zstd') {
    file = `${tmp}.zst`;
    const r = spawnSync('zstd', ['-q', '-3', '-f', '--no-progress', tmp, '-o', file], { encoding: 'utf8' });
    rmSync(tmp, { force: true });
    if (r.status !== 0) throw new Error(`zstd failed: ${r.stderr || r.error?.message}`);
    const h = createHash('sha256');
    size = 0;
    for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
      h.update(chunk);
      size += chunk.length;
    }
    digest = 'sha256:' + h.digest('hex');
  } else {
    digest = comp.digest();
    size = comp.bytes;
  }
  const diffId = diff.digest();
  const path = join(dir, digest.slice(7));
  renameSync(file, path);
  return {
    digest,
    size,
    path,
    mediaType: layerMediaType(opts.compression, opts.format ?? 'oci'),
    diffId,
    uncompressedSize: diff.bytes,
    compression: opts.compression,
  };
}

// ---------------------------------------------------------------- configs and manifests

export interface ImageOptions {
  format?: ManifestFormat;
  platform?: Platform;
  config?: ImageConfigSpec;
  hostile?: HostileExpectation;
}

const toSet = (xs: string[] | undefined): Record<string, Record<string, never>> | undefined => (xs ? Object.fromEntries(xs.map((x) => [x, {}])) : undefined);

export function buildImage(layers: LayerBlob[], opts: ImageOptions = {}): FixtureManifest {
  const format = opts.format ?? 'oci';
  const platform = opts.platform ?? AMD64;
  const c = opts.config ?? {};
  const runConfig: Record<string, unknown> = {
    User: c.User,
    Env: c.Env ?? ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
    Entrypoint: c.Entrypoint,
    Cmd: c.Cmd,
    WorkingDir: c.WorkingDir,
    Volumes: toSet(c.Volumes),
    ExposedPorts: toSet(c.ExposedPorts),
    StopSignal: c.StopSignal,
    Labels: c.Labels,
  };
  for (const k of Object.keys(runConfig)) if (runConfig[k] === undefined) delete runConfig[k];
  const configJson: Record<string, unknown> = {
    created: CREATED,
    architecture: platform.architecture,
    ...(platform.variant ? { variant: platform.variant } : {}),
    os: platform.os,
    config: runConfig,
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map((_l, i) => ({ created: CREATED, created_by: `berth fixture layer ${i + 1}` })),
  };
  const config = storeBuffer(Buffer.from(JSON.stringify(configJson)), format === 'oci' ? MediaType.ociConfig : MediaType.dockerConfig);
  for (const l of layers) {
    if ((format === 'docker') !== l.mediaType.startsWith('application/vnd.docker.')) {
      throw new Error(`layer ${l.digest} has media type ${l.mediaType}, not usable in a ${format} manifest`);
    }
  }
  const manifest = {
    schemaVersion: 2,
    mediaType: format === 'oci' ? MediaType.ociManifest : MediaType.dockerManifest,
    config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
    layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  return {
    kind: 'manifest',
    mediaType: manifest.mediaType,
    bytes,
    digest: sha256(bytes),
    size: bytes.length,
    platform,
    config,
    configJson,
    layers,
    hostile: opts.hostile,
  };
}

export function buildIndex(manifests: FixtureManifest[], format: ManifestFormat = 'oci'): FixtureIndex {
  const mediaType = format === 'oci' ? MediaType.ociIndex : MediaType.dockerManifestList;
  const index = {
    schemaVersion: 2,
    mediaType,
    manifests: manifests.map((m) => ({ mediaType: m.mediaType, digest: m.digest, size: m.size, platform: m.platform })),
  };
  const bytes = Buffer.from(JSON.stringify(index));
  return { kind: 'index', mediaType, bytes, digest: sha256(bytes), size: bytes.length, manifests };
}

// ---------------------------------------------------------------- fixture content

export const PASSWD =
  [
    'root:x:0:0:root:/root:/bin/sh',
    'daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin',
    'www-data:x:33:33:www-data:/var/www:/usr/sbin/nologin',
    'app:x:1002:1002:app user:/home/app:/bin/sh',
    'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin',
  ].join('\n') + '\n';

export const GROUP =
  ['root:x:0:', 'daemon:x:1:', 'www-data:x:33:', 'users:x:100:www-data,app', 'app:x:1002:', 'extra:x:1005:www-data', 'nogroup:x:65534:'].join('\n') + '\n';

function baseEntries(): LayerEntry[] {
  return [
    { type: 'dir', path: 'etc/' },
    { type: 'file', path: 'etc/passwd', content: PASSWD },
    { type: 'file', path: 'etc/group', content: GROUP },
    { type: 'file', path: 'etc/hostname', content: 'fixture\n' },
  ];
}

const TINY_CONFIG: ImageConfigSpec = {
  Env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'FIXTURE=tiny', 'GREETING=hello world'],
  Entrypoint: ['/bin/app'],
  Cmd: ['--serve'],
  User: 'www-data',
  WorkingDir: '/srv',
  Volumes: ['/data'],
  ExposedPorts: ['8080/tcp', '53/udp'],
  StopSignal: 'SIGQUIT',
  Labels: { 'org.example.fixture': 'tiny', maintainer: 'berth tests' },
};

function tinyLayer(compression: Compression, format: ManifestFormat = 'oci'): Promise<LayerBlob> {
  return buildLayer(
    [
      ...baseEntries(),
      { type: 'dir', path: 'srv/' },
      { type: 'file', path: 'srv/hello.txt', content: 'hello from tiny\n' },
      { type: 'file', path: 'srv/script', content: '#!/bin/app\n', mode: 0o755 },
      { type: 'dir', path: 'data/', mode: 0o700, uid: 33, gid: 33 },
      { type: 'symlink', path: 'srv/hello-link', target: 'hello.txt' },
      { type: 'hardlink', path: 'srv/hello-hard', target: 'srv/hello.txt' },
    ],
    { compression, format },
    'tiny',
  );
}

function twoLayers(compression: Compression): Promise<LayerBlob[]> {
  return Promise.all([
    buildLayer(
      [...baseEntries(), { type: 'dir', path: 'opt/' }, { type: 'file', path: 'opt/one.txt', content: 'layer one\n'.repeat(200) }],
      { compression },
      'two-a',
    ),
    buildLayer(
      [
        { type: 'dir', path: 'opt/' },
        { type: 'file', path: 'opt/two.txt', content: 'layer two\n'.repeat(200) },
      ],
      { compression },
      'two-b',
    ),
  ]);
}

function archLayer(p: Platform, format: ManifestFormat): Promise<LayerBlob> {
  const arch = p.variant ? `${p.architecture}/${p.variant}` : p.architecture;
  return buildLayer([...baseEntries(), { type: 'file', path: 'arch', content: `${arch}\n` }], { compression: 'gzip', format }, `arch-${arch}`);
}

const PLATFORMS: Platform[] = [
  { architecture: 'amd64', os: 'linux' },
  { architecture: 'arm64', os: 'linux', variant: 'v8' },
  { architecture: 'arm', os: 'linux', variant: 'v7' },
];

async function multiarch(format: ManifestFormat): Promise<FixtureIndex> {
  const manifests: FixtureManifest[] = [];
  for (const p of PLATFORMS) {
    const layer = await archLayer(p, format);
    manifests.push(buildImage([layer], { format, platform: p, config: { Cmd: ['/arch'], Labels: { arch: p.architecture } } }));
  }
  return buildIndex(manifests, format);
}

async function whiteouts(): Promise<FixtureManifest> {
  const l1 = await buildLayer(
    [
      ...baseEntries(),
      { type: 'dir', path: 'a/' },
      { type: 'file', path: 'a/keep', content: 'keep\n' },
      { type: 'file', path: 'a/remove-me', content: 'remove\n' },
      { type: 'dir', path: 'a/remove-dir/' },
      { type: 'file', path: 'a/remove-dir/inner', content: 'inner\n' },
      { type: 'dir', path: 'opaque/' },
      { type: 'file', path: 'opaque/old1', content: 'old\n' },
      { type: 'dir', path: 'opaque/sub/' },
      { type: 'file', path: 'opaque/sub/old2', content: 'old\n' },
    ],
    { compression: 'gzip' },
    'whiteouts-1',
  );
  const l2 = await buildLayer(
    [
      { type: 'file', path: 'a/.wh.remove-me', content: '' },
      { type: 'file', path: 'a/.wh.remove-dir', content: '' },
      { type: 'dir', path: 'opaque/' },
      { type: 'file', path: 'opaque/.wh..wh..opq', content: '' },
      { type: 'file', path: 'opaque/new', content: 'new\n' },
    ],
    { compression: 'gzip' },
    'whiteouts-2',
  );
  return buildImage([l1, l2], { config: { Cmd: ['/none'] } });
}

async function usersImage(user: string): Promise<FixtureManifest> {
  const layer = await buildLayer(
    [
      ...baseEntries(),
      { type: 'dir', path: 'var/' },
      { type: 'dir', path: 'var/www/', uid: 33, gid: 33 },
      { type: 'dir', path: 'home/' },
      { type: 'dir', path: 'home/app/', uid: 1002, gid: 1002 },
    ],
    { compression: 'gzip' },
    'users',
  );
  return buildImage([layer], { config: { User: user, Cmd: ['/none'] } });
}

// ---- hostile layers. Targets carry a per-process unique name so tests can check the host.

const escapeTag = `${process.pid}-${randomBytes(4).toString('hex')}`;
/** Host path prefix of everything hostile fixtures try to create. */
export const ESCAPE_PREFIX = `/tmp/berth-escape-${escapeTag}`;
const UP = '../../../../../../../../../../../..';

async function hostile(name: string, layersEntries: LayerEntry[][], expect: HostileExpectation): Promise<FixtureManifest> {
  const layers: LayerBlob[] = [];
  for (let i = 0; i < layersEntries.length; i++) {
    layers.push(await buildLayer(layersEntries[i], { compression: 'gzip' }, `${name}-${i}-${escapeTag}`));
  }
  return buildImage(layers, { config: { Cmd: ['/none'] }, hostile: expect });
}

const target = (suffix: string): string => `${ESCAPE_PREFIX}-${suffix}`;
const base = (p: string): string => p.slice('/tmp/'.length);

const hostileBuilders = {
  'evil-dotdot': () =>
    hostile(
      'evil-dotdot',
      [
        [
          ...baseEntries(),
          { type: 'file', path: `${UP}${target('dotdot')}`, content: 'pwned\n' },
          { type: 'file', path: `etc/${UP}${target('dotdot2')}`, content: 'pwned\n' },
        ],
      ],
      {
        mustNotExist: [target('dotdot'), target('dotdot2')],
        mustNotLink: [],
      },
    ),
  'evil-absolute': () =>
    hostile('evil-absolute', [[...baseEntries(), { type: 'file', path: target('abs'), content: 'pwned\n' }]], {
      mustNotExist: [target('abs')],
      mustNotLink: [],
    }),
  // A symlink to /tmp planted inside the rootfs, then a file written "through" it.
  'evil-symlink': () =>
    hostile(
      'evil-symlink',
      [[...baseEntries(), { type: 'symlink', path: 'link', target: '/tmp' }, { type: 'file', path: `link/${base(target('sym'))}`, content: 'pwned\n' }]],
      {
        mustNotExist: [target('sym')],
        mustNotLink: [],
      },
    ),
  'evil-symlink-relative': () =>
    hostile(
      'evil-symlink-relative',
      [[...baseEntries(), { type: 'symlink', path: 'up', target: `${UP}/tmp` }, { type: 'file', path: `up/${base(target('symrel'))}`, content: 'pwned\n' }]],
      {
        mustNotExist: [target('symrel')],
        mustNotLink: [],
      },
    ),
  // The link comes from one layer, the write through it from the next.
  'evil-symlink-layers': () =>
    hostile(
      'evil-symlink-layers',
      [
        [...baseEntries(), { type: 'symlink', path: 'link2', target: '/tmp' }],
        [{ type: 'file', path: `link2/${base(target('symlayer'))}`, content: 'pwned\n' }],
      ],
      { mustNotExist: [target('symlayer')], mustNotLink: [] },
    ),
  // A symlink named "." must not redirect later entries.
  'evil-symlink-dot': () =>
    hostile(
      'evil-symlink-dot',
      [
        [
          { type: 'symlink', path: '.', target: '/tmp' },
          { type: 'file', path: base(target('symdot')), content: 'pwned\n' },
        ],
      ],
      {
        mustNotExist: [target('symdot')],
        mustNotLink: [],
      },
    ),
  'evil-hardlink': () =>
    hostile(
      'evil-hardlink',
      [
        [
          ...baseEntries(),
          { type: 'hardlink', path: 'passwd-abs', target: '/etc/passwd' },
          { type: 'hardlink', path: 'passwd-rel', target: `${UP}/etc/passwd` },
        ],
      ],
      { mustNotExist: [], mustNotLink: ['/etc/passwd'] },
    ),
} satisfies Record<string, () => Promise<FixtureManifest>>;

// ---- runnable images from the host's static busybox

export const BUSYBOX_PATH = '/bin/busybox';

export function busyboxAvailable(): boolean {
  if (!existsSync(BUSYBOX_PATH)) return false;
  // Only a static binary runs in an image without libc.
  const r = spawnSync('file', ['-L', BUSYBOX_PATH], { encoding: 'utf8' });
  return r.status !== 0 || !/dynamically linked/.test(r.stdout);
}

function busyboxLayer(): Promise<LayerBlob> {
  if (!busyboxAvailable()) throw new Error(`${BUSYBOX_PATH} (static) is missing: apt-get install busybox-static`);
  const applets = spawnSync(BUSYBOX_PATH, ['--list'], { encoding: 'utf8' })
    .stdout.split('\n')
    .map((s) => s.trim())
    .filter((s) => s !== '' && s !== 'busybox' && /^[a-z0-9_.[-]+$/.test(s));
  const entries: LayerEntry[] = [
    { type: 'dir', path: 'bin/' },
    { type: 'file', path: 'bin/busybox', content: readFileSync(BUSYBOX_PATH), mode: 0o755 },
    ...applets.map((a): LayerEntry => ({ type: 'symlink', path: `bin/${a}`, target: 'busybox' })),
    ...baseEntries(),
    { type: 'dir', path: 'root/', mode: 0o700 },
    { type: 'dir', path: 'tmp/', mode: 0o1777 },
    { type: 'dir', path: 'home/' },
    { type: 'dir', path: 'home/app/', uid: 1002, gid: 1002 },
    { type: 'dir', path: 'var/' },
    { type: 'dir', path: 'var/www/', uid: 33, gid: 33 },
    { type: 'dir', path: 'proc/' },
    { type: 'dir', path: 'sys/' },
    { type: 'dir', path: 'dev/' },
  ];
  return buildLayer(entries, { compression: 'gzip' }, 'busybox');
}

/** The pause process: exits 0 on SIGTERM/SIGINT (pid 1 ignores signals it has no handler for). */
export const PAUSE_SCRIPT = 'trap "exit 0" TERM INT; while :; do sleep 3600 & wait; done';

// ---- big image for the pull benchmark

/** Sizes of the `big` fixture; tests may shrink it, the bench uses the defaults. */
export interface BigSpec {
  smallLayers: number;
  filesPerSmallLayer: number;
  largeLayers: number;
  largeFilesPerLayer: number;
  largeFileBytes: number;
  gzipLevel: number;
}

export const BIG_DEFAULT: BigSpec = {
  smallLayers: 3,
  filesPerSmallLayer: 10_000,
  largeLayers: 2,
  largeFilesPerLayer: 2,
  largeFileBytes: 48 * 1024 * 1024,
  gzipLevel: 6,
};

function* smallFiles(layer: number, count: number): Generator<LayerEntry> {
  const rng = new SeededBytes(`big-small-${layer}`);
  const perDir = 100;
  yield { type: 'dir', path: `l${layer}/` };
  for (let i = 0; i < count; i++) {
    const d = Math.floor(i / perDir);
    if (i % perDir === 0) yield { type: 'dir', path: `l${layer}/d${String(d).padStart(3, '0')}/` };
    const size = 1024 + rng.int(7 * 1024 + 1);
    // Hex text compresses about 2:1, like source files and configs do.
    const content = rng
      .next(Math.ceil(size / 2))
      .toString('hex')
      .slice(0, size);
    yield { type: 'file', path: `l${layer}/d${String(d).padStart(3, '0')}/f${String(i).padStart(5, '0')}.txt`, content };
  }
}

export async function bigImage(spec: BigSpec = BIG_DEFAULT): Promise<FixtureManifest> {
  return buildImage(await bigLayers(spec), { config: { Cmd: ['/none'], Labels: { 'org.example.fixture': 'big' } } });
}

/**
 * The `big` layers on top of the busybox layer: a runnable image of the big fixture's size
 * (the user-namespace bench starts containers on it).
 */
export async function bigRunnableImage(spec: BigSpec = BIG_DEFAULT): Promise<FixtureManifest> {
  return buildImage([await busyboxLayer(), ...(await bigLayers(spec))], {
    config: { Cmd: ['sh'], Env: ['PATH=/bin:/usr/bin:/sbin:/usr/sbin'], Labels: { 'org.example.fixture': 'big-runnable' } },
  });
}

async function bigLayers(spec: BigSpec): Promise<LayerBlob[]> {
  const key = `big-${JSON.stringify(spec)}`;
  const layers: LayerBlob[] = [];
  for (let l = 0; l < spec.smallLayers; l++) {
    layers.push(await buildLayer(smallFiles(l, spec.filesPerSmallLayer), { compression: 'gzip', level: spec.gzipLevel }, `${key}-s${l}`));
  }
  for (let l = 0; l < spec.largeLayers; l++) {
    const entries: LayerEntry[] = [{ type: 'dir', path: `large${l}/` }];
    for (let f = 0; f < spec.largeFilesPerLayer; f++) {
      entries.push({ type: 'generated', path: `large${l}/blob${f}.bin`, size: spec.largeFileBytes, seed: `big-large-${l}-${f}` });
    }
    layers.push(await buildLayer(entries, { compression: 'gzip', level: spec.gzipLevel }, `${key}-L${l}`));
  }
  return layers;
}

// ---------------------------------------------------------------- the named fixtures

const builders = {
  tiny: async () => buildImage([await tinyLayer('gzip')], { config: TINY_CONFIG }),
  'tiny-docker': async () => buildImage([await tinyLayer('gzip', 'docker')], { format: 'docker', config: TINY_CONFIG }),
  multiarch: () => multiarch('oci'),
  'multiarch-docker': () => multiarch('docker'),
  'layers-gzip': async () => buildImage(await twoLayers('gzip'), { config: { Cmd: ['/none'] } }),
  'layers-zstd': async () => buildImage(await twoLayers('zstd'), { config: { Cmd: ['/none'] } }),
  'layers-plain': async () => buildImage(await twoLayers('none'), { config: { Cmd: ['/none'] } }),
  whiteouts,
  'users-uid': () => usersImage('1002'),
  'users-name': () => usersImage('www-data'),
  'users-uid-gid': () => usersImage('1003:100'),
  'users-name-group': () => usersImage('www-data:users'),
  ...hostileBuilders,
  busybox: async () => buildImage([await busyboxLayer()], { config: { Cmd: ['sh'], Env: ['PATH=/bin:/usr/bin:/sbin:/usr/sbin'] } }),
  pause: async () =>
    buildImage([await busyboxLayer()], {
      config: { Entrypoint: ['/bin/sh', '-c', PAUSE_SCRIPT], Env: ['PATH=/bin'], StopSignal: 'SIGTERM' },
    }),
} satisfies Record<string, () => Promise<FixtureImage>>;

export type FixtureName = keyof typeof builders;
export const FIXTURE_NAMES = Object.keys(builders) as FixtureName[];
/** Fixtures that need the host's static busybox. */
export const RUNNABLE_FIXTURES: FixtureName[] = ['busybox', 'pause'];
export const HOSTILE_FIXTURES = Object.keys(hostileBuilders) as FixtureName[];

const built = new Map<string, Promise<FixtureImage>>();

/** Builds (once per process) the named fixture. */
export function fixture(name: FixtureName): Promise<FixtureImage> {
  let p = built.get(name);
  if (!p) {
    p = builders[name]();
    built.set(name, p);
  }
  return p;
}

// ---------------------------------------------------------------- pushing

export interface PushedManifest {
  manifestDigest: string;
  mediaType: string;
  platform: Platform;
  configDigest: string;
  layers: LayerBlob[];
  diffIds: string[];
}

export interface PushedFixture extends PushedManifest {
  name: string;
  repo: string;
  tag: string;
  /** '127.0.0.1:PORT/repo:tag' */
  ref: string;
  /** '127.0.0.1:PORT/repo@sha256:...' */
  digestRef: string;
  /** For an index: its children (the top-level fields then describe the linux/amd64 child). */
  children?: PushedManifest[];
  image: FixtureImage;
  hostile?: HostileExpectation;
}

function describe(m: FixtureManifest): PushedManifest {
  return {
    manifestDigest: m.digest,
    mediaType: m.mediaType,
    platform: m.platform,
    configDigest: m.config.digest,
    layers: m.layers,
    diffIds: m.layers.map((l) => l.diffId),
  };
}

async function pushOne(target: PushTarget, repo: string, m: FixtureManifest, reference: string): Promise<void> {
  for (const b of [...m.layers, m.config]) await pushBlob(target, repo, b);
  await pushManifest(target, repo, reference, m.mediaType, m.bytes);
}

/** Pushes an image as repo:tag; child manifests of an index are pushed by digest first. */
export async function pushFixture(registryUrl: string, repo: string, tag: string, image: FixtureImage, auth?: PushAuth): Promise<PushedFixture> {
  const target: PushTarget = { url: registryUrl, auth };
  const host = new URL(registryUrl).host;
  let top: PushedManifest;
  let children: PushedManifest[] | undefined;
  if (image.kind === 'index') {
    for (const m of image.manifests) await pushOne(target, repo, m, m.digest);
    await pushManifest(target, repo, tag, image.mediaType, image.bytes);
    children = image.manifests.map(describe);
    const amd = image.manifests.find((m) => m.platform.architecture === 'amd64' && m.platform.os === 'linux') ?? image.manifests[0];
    top = { ...describe(amd), manifestDigest: image.digest, mediaType: image.mediaType };
  } else {
    await pushOne(target, repo, image, tag);
    top = describe(image);
  }
  return {
    ...top,
    name: repo,
    repo,
    tag,
    ref: `${host}/${repo}:${tag}`,
    digestRef: `${host}/${repo}@${image.digest}`,
    children,
    image,
    hostile: image.kind === 'manifest' ? image.hostile : undefined,
  };
}

export interface RegistryLike {
  url: string;
  auth?: PushAuth;
}

export interface PushAllOptions {
  /** Which fixtures (default: all; busybox/pause only when a static busybox exists). */
  names?: FixtureName[];
  /** Repository prefix, e.g. 'fixtures/' (default ''). */
  prefix?: string;
  /** Also push `big` (slow: ~300 MB) under the name 'big'. */
  big?: boolean;
}

/** Pushes the fixtures as `<prefix><name>:latest`; returns name → pushed description. */
export async function pushAllFixtures(registry: RegistryLike, opts: PushAllOptions = {}): Promise<Map<string, PushedFixture>> {
  const names = opts.names ?? FIXTURE_NAMES.filter((n) => !RUNNABLE_FIXTURES.includes(n) || busyboxAvailable());
  const out = new Map<string, PushedFixture>();
  for (const name of names) {
    out.set(name, await pushFixture(registry.url, `${opts.prefix ?? ''}${name}`, 'latest', await fixture(name), registry.auth));
  }
  if (opts.big) out.set('big', await pushFixture(registry.url, `${opts.prefix ?? ''}big`, 'latest', await bigImage(), registry.auth));
  return out;
}
