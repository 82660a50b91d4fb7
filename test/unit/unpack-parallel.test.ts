import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { SnapshotLayerStore } from '../../src/core/images/layer-store.js';
import { log } from '../../src/log.js';
import { chainIDs } from '../../src/core/snapshots/chainid.js';
import { NativeSnapshotter } from '../../src/core/snapshots/native.js';
import { OverlaySnapshotter } from '../../src/core/snapshots/overlay.js';
import { FileSource } from '../../src/core/unpack/file-source.js';
import { UnpackPool } from '../../src/core/unpack/pool.js';
import { lgetxattr } from '../../src/core/unpack/sys.js';
import { buildTar, gzip, sha256, tempDir, type TarEntry } from '../helpers/tar.js';

interface Layer {
  tar: Buffer;
  blob: Buffer;
}

async function layer(entries: TarEntry[]): Promise<Layer> {
  const tar = await buildTar(entries);
  return { tar, blob: gzip(tar) };
}

/** A chain whose later layers depend on earlier ones in every way the unpacker knows. */
async function chain(): Promise<Layer[]> {
  const files = (dir: string, n: number): TarEntry[] =>
    Array.from({ length: n }, (_, i) => ({ name: `${dir}/f${i}`, content: `${dir} ${i} `.repeat(i + 1), mode: i % 2 ? 0o600 : 0o755 }));
  return [
    await layer([
      { name: 'usr/', type: 'directory' },
      { name: 'usr/lib/', type: 'directory' },
      { name: 'lib', type: 'symlink', linkname: 'usr/lib' },
      { name: 'opt/', type: 'directory', mode: 0o750, uid: 7, gid: 8 },
      { name: 'etc/', type: 'directory' },
      { name: 'etc/gone', content: 'x' },
      { name: 'var/', type: 'directory' },
      { name: 'var/cache/', type: 'directory' },
      { name: 'var/cache/old', content: 'old' },
      ...files('usr/lib', 40),
    ]),
    await layer([
      // No "lib/" or "opt/" entries: the parents come from the lower layer (symlink, owned dir).
      { name: 'lib/libx.so', content: 'x', mode: 0o755 },
      { name: 'opt/tool/bin', content: 'tool', mode: 0o755 },
      { name: 'etc/.wh.gone' },
      { name: 'var/cache/.wh..wh..opq' },
      { name: 'var/cache/new', content: 'new' },
      { name: 'data/', type: 'directory', mtime: new Date(1_500_000_000_000) },
      ...files('data', 60),
      { name: 'data/hard', type: 'link', linkname: 'data/f3' },
      { name: 'data/fifo', type: 'fifo' },
    ]),
    await layer([
      { name: 'more/', type: 'directory', uid: 1000, gid: 1000 },
      ...files('more', 80),
      { name: 'data/f1', content: 'replaced' },
      { name: 'data/.wh.f2' },
    ]),
  ];
}

type TreeEntry = string;

/** Everything the unpacker sets, per path, in a stable text form. */
function walk(root: string): TreeEntry[] {
  const out: TreeEntry[] = [];
  const visit = (rel: string) => {
    const abs = join(root, rel);
    const st = lstatSync(abs);
    let what: string;
    if (st.isFile()) what = `file ${createHash('sha256').update(readFileSync(abs)).digest('hex').slice(0, 16)} nlink=${st.nlink}`;
    else if (st.isSymbolicLink()) what = `symlink ${readlinkSync(abs)}`;
    else if (st.isDirectory()) what = `dir opaque=${lgetxattr(abs, 'trusted.overlay.opaque')?.toString() ?? '-'}`;
    else what = `special rdev=${st.rdev}`;
    // Directories the unpacker creates without an entry (and whiteouts) get the current time.
    const mtime = rel === '' ? '' : ` mtime=${st.mtimeMs > Date.now() - 3_600_000 ? 'now' : st.mtimeMs}`;
    out.push(`${rel || '.'} ${what} mode=${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}${mtime}`);
    if (st.isDirectory()) for (const name of readdirSync(abs).sort()) visit(rel ? `${rel}/${name}` : name);
  };
  visit('');
  return out;
}

/** The layer dir of committed snapshot `chainID` (the newest lowerdir of a view on it). */
async function layerDir(sn: OverlaySnapshotter, chainID: string): Promise<string> {
  const key = `view-${chainID}`;
  await sn.view(key, chainID);
  const m = (await sn.mounts(key))[0]!;
  await sn.remove(key);
  if (m.type === 'bind') return m.source;
  return m.options
    .find((o) => o.startsWith('lowerdir='))!
    .slice('lowerdir='.length)
    .split(':')[0]!;
}

async function store(t: import('node:test').TestContext, dir: string, poolSize: number) {
  const sn = new OverlaySnapshotter(dir);
  await sn.init();
  const pool = new UnpackPool({ size: poolSize, idleMs: 50 });
  t.after(async () => {
    await pool.close();
    sn.close();
  });
  return { sn, layers: new SnapshotLayerStore(sn, log, { pool }) };
}

test('layers applied concurrently on worker threads give the same trees as one after another on the main thread', async (t) => {
  const dir = await tempDir(t);
  const layers = await chain();
  const diffIDs = layers.map((l) => sha256(l.tar));
  const ids = chainIDs(diffIDs);

  const seq = await store(t, join(dir, 'seq'), 0);
  for (let i = 0; i < layers.length; i++) {
    await seq.layers.apply({ chainID: ids[i]!, parentChainID: ids[i - 1], diffID: diffIDs[i]!, compression: 'gzip', stream: Readable.from([layers[i]!.blob]) });
  }

  const par = await store(t, join(dir, 'par'), 2);
  // The last layer comes from a file, as stored blobs do in a pull.
  const blobFile = join(dir, 'blob');
  writeFileSync(blobFile, layers[2]!.blob);
  const streams = [Readable.from([layers[0]!.blob]), Readable.from([layers[1]!.blob]), new FileSource(blobFile)];
  // All three at once: each child starts while its parent is still being unpacked.
  await Promise.all(
    layers.map((_, i) => par.layers.apply({ chainID: ids[i]!, parentChainID: ids[i - 1], diffID: diffIDs[i]!, compression: 'gzip', stream: streams[i]! })),
  );

  for (const id of ids) {
    assert.deepEqual(walk(await layerDir(par.sn, id)), walk(await layerDir(seq.sn, id)), `layer ${id}`);
  }
  // The lower layer's symlink and owned directory were honoured, not guessed.
  const second = await layerDir(par.sn, ids[1]!);
  assert.equal(readFileSync(join(second, 'usr/lib/libx.so'), 'utf8'), 'x');
  const opt = lstatSync(join(second, 'opt'));
  assert.deepEqual([opt.uid, opt.gid, opt.mode & 0o7777], [7, 8, 0o750]);
  assert.deepEqual(
    readdirSync(join(par.sn.root, 'snapshots')).filter((n) => n.startsWith('staging-')),
    [],
    'staging dirs adopted',
  );
});

test('a failing layer on a worker fails its children too and leaves no snapshot or staging dir behind', async (t) => {
  const dir = await tempDir(t);
  const good = await layer([
    { name: 'a/', type: 'directory' },
    { name: 'a/f', content: 'f' },
  ]);
  // A hard link to a file that does not exist in the layer: rejected by the unpacker.
  const bad = await layer([
    { name: 'b/', type: 'directory' },
    { name: 'b/f', content: 'x'.repeat(100_000) },
    { name: 'b/l', type: 'link', linkname: 'nope' },
  ]);
  const child = await layer([
    { name: 'c/', type: 'directory' },
    { name: 'c/f', content: 'c' },
  ]);
  const diffIDs = [good, bad, child].map((l) => sha256(l.tar));
  const ids = chainIDs(diffIDs);
  const { sn, layers } = await store(t, dir, 2);

  const results = await Promise.allSettled(
    [good, bad, child].map((l, i) =>
      layers.apply({ chainID: ids[i]!, parentChainID: ids[i - 1], diffID: diffIDs[i]!, compression: 'gzip', stream: Readable.from([l.blob]) }),
    ),
  );
  assert.equal(results[0]!.status, 'fulfilled');
  assert.equal(results[1]!.status, 'rejected');
  assert.equal((results[1] as PromiseRejectedResult).reason.code, 'unpack.bad_hardlink');
  assert.equal(results[2]!.status, 'rejected');
  assert.deepEqual(
    (await sn.list()).map((s) => s.key),
    [ids[0]],
  );
  assert.deepEqual(
    readdirSync(join(sn.root, 'snapshots')).filter((n) => !/^[0-9]+$/.test(n)),
    [],
  );
  assert.equal(readdirSync(join(sn.root, 'snapshots')).length, 1);
});

test('a corrupt blob streamed to a worker rejects with the stream error and leaves nothing behind', async (t) => {
  const dir = await tempDir(t);
  const l = await layer([{ name: 'x', content: 'y'.repeat(200_000) }]);
  const { sn, layers } = await store(t, dir, 1);
  const broken = new Readable({ read() {} });
  broken.push(l.blob.subarray(0, 1000));
  setTimeout(() => broken.destroy(Object.assign(new Error('connection reset'), { code: 'ECONNRESET' })), 20);
  await assert.rejects(layers.apply({ chainID: sha256('c'), diffID: sha256(l.tar), compression: 'gzip', stream: broken }), { code: 'ECONNRESET' });
  assert.deepEqual(await sn.list(), []);
  assert.deepEqual(readdirSync(join(sn.root, 'snapshots')), []);
});

test('native snapshotter: concurrently applied layers still build on their committed parents', async (t) => {
  const dir = await tempDir(t);
  const sn = new NativeSnapshotter(dir);
  await sn.init();
  const pool = new UnpackPool({ size: 2, idleMs: 50 });
  t.after(async () => {
    await pool.close();
    sn.close();
  });
  const layers = new SnapshotLayerStore(sn, log, { pool });
  const ls = [
    await layer([
      { name: 'etc/', type: 'directory' },
      { name: 'etc/a', content: 'a' },
      { name: 'etc/b', content: 'b' },
    ]),
    await layer([{ name: 'etc/c', content: 'c' }, { name: 'etc/.wh.a' }]),
  ];
  const diffIDs = ls.map((l) => sha256(l.tar));
  const ids = chainIDs(diffIDs);
  await Promise.all(
    ls.map((l, i) => layers.apply({ chainID: ids[i]!, parentChainID: ids[i - 1], diffID: diffIDs[i]!, compression: 'gzip', stream: Readable.from([l.blob]) })),
  );
  await sn.view('v', ids[1]);
  const root = (await sn.mounts('v'))[0]!.source;
  assert.deepEqual(readdirSync(join(root, 'etc')).sort(), ['b', 'c']);
});

test('a streamed gzip layer reuses the transfer batches the worker hands back', async (t) => {
  const dir = await tempDir(t);
  // Incompressible, so the blob is ~16 MiB: 32 batches of 512 KiB, at most ~9 in flight at once.
  const l = await layer([{ name: 'big', content: randomBytes(16 << 20) }]);
  const pool = new UnpackPool({ size: 1 });
  t.after(() => pool.close());
  const target = join(dir, 'out');
  mkdirSync(target);
  // 64 KiB chunks, as a download gives them (the pool pauses the source between chunks).
  const chunks = Array.from({ length: Math.ceil(l.blob.length / (64 << 10)) }, (_, i) => l.blob.subarray(i * (64 << 10), (i + 1) * (64 << 10)));
  const res = await pool.reserve().extract({ source: Readable.from(chunks), compression: 'gzip', dir: target, mode: 'overlay', lowers: [] });
  assert.equal(res.diffID, sha256(l.tar));
  assert.ok(readFileSync(join(target, 'big')).equals(l.tar.subarray(512, 512 + (16 << 20))));
  assert.ok(pool.batches.sent >= 32, `sent ${pool.batches.sent}`);
  assert.ok(pool.batches.allocated <= 12, `${pool.batches.allocated} of ${pool.batches.sent} batches were new buffers`);
});

test('a worker unpacking a tree of directories prints no fd warnings (natively opened dirs closed with fs.closeSync)', async (t) => {
  const dir = await tempDir(t);
  const entries: TarEntry[] = [];
  for (let d = 0; d < 20; d++) {
    entries.push({ name: `d${d}/`, type: 'directory', mtime: new Date(1_500_000_000_000) });
    entries.push({ name: `d${d}/sub/`, type: 'directory', mtime: new Date(1_500_000_000_000) });
    entries.push({ name: `d${d}/sub/f`, content: `${d}` });
  }
  const l = await layer(entries);
  const diffID = sha256(l.tar);
  const [chainID] = chainIDs([diffID]);
  const captured: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    captured.push(String(chunk));
    return (write as (c: string | Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stderr.write;
  t.after(() => {
    process.stderr.write = write;
  });
  const par = await store(t, join(dir, 'par'), 1);
  await par.layers.apply({ chainID: chainID!, diffID, compression: 'gzip', stream: Readable.from([l.blob]) });
  // A worker's stderr reaches this process's asynchronously: let it drain.
  await new Promise((r) => setTimeout(r, 300));
  const tree = await layerDir(par.sn, chainID!);
  assert.equal(lstatSync(join(tree, 'd3/sub')).mtimeMs, 1_500_000_000_000, 'the directory times were set (through the natively opened fds)');
  assert.deepEqual(
    captured.filter((c) => c.includes('closed but not opened')),
    [],
  );
});
