/**
 * The CRI ImageService end to end: a real berthd, a real registry (Debian docker-registry)
 * serving fixture images built by the test setup, and a CRI client on berthd's socket.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, lstatSync, readFileSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { until } from '../helpers/process.js';
import { startRegistry, registryAvailable, type TestRegistry } from '../helpers/registry.js';
import { pushAllFixtures, pushFixture, fixture, buildImage, buildLayer, HOSTILE_FIXTURES, type PushedFixture, type FixtureName } from '../helpers/images.js';
import { startBerthd, repoRoot, type TestBerthd } from '../helpers/berthd.js';

const skip = !registryAvailable() || process.getuid?.() !== 0 ? 'needs root and docker-registry' : false;

let reg: TestRegistry;
let authReg: TestRegistry;
let d: TestBerthd;
let fx: Map<string, PushedFixture>;

const grpcCode = (err: unknown) => (err as { code?: number }).code;
const details = (err: unknown) => String((err as { details?: string }).details ?? (err as Error).message);

before(async () => {
  if (skip) return;
  reg = await startRegistry();
  authReg = await startRegistry({ auth: { username: 'alice', password: 's3cret' } });
  const names: FixtureName[] = [
    'tiny',
    'tiny-docker',
    'multiarch',
    'multiarch-docker',
    'layers-gzip',
    'layers-zstd',
    'layers-plain',
    'whiteouts',
    'users-uid',
    'users-name',
    'users-uid-gid',
    'users-name-group',
    ...HOSTILE_FIXTURES,
  ];
  fx = await pushAllFixtures(reg, { names });
  await pushFixture(authReg.url, 'private/tiny', 'v1', await fixture('tiny'), { username: 'alice', password: 's3cret' });
  d = await startBerthd({ extraToml: `sandbox_image = "${reg.host}/tiny:latest"\n` });
});

after(async () => {
  if (skip) return;
  await d?.cleanup();
  await reg?.stop();
  await authReg?.stop();
});

test('PullImage returns the image id (config digest); ListImages and ImageStatus describe it', { skip }, async () => {
  const f = fx.get('layers-gzip')!;
  const res = await d.cri.image.pullImage({ image: { image: f.ref } });
  assert.equal(res.imageRef, f.configDigest);
  const list = await d.cri.image.listImages({});
  const img = list.images.find((i) => i.id === f.configDigest);
  assert.ok(img, 'pulled image is listed');
  assert.deepEqual(img.repoTags, [f.ref]);
  assert.deepEqual(img.repoDigests, [f.digestRef]);
  const expectedSize = f.image.size + f.layers.reduce((a, l) => a + l.size, 0) + (f.image.kind === 'manifest' ? f.image.config.size : 0);
  assert.equal(Number(img.size), expectedSize);
  const st = await d.cri.image.imageStatus({ image: { image: f.ref }, verbose: true });
  assert.equal(st.image?.id, f.configDigest);
  const info = JSON.parse(st.info.info!) as { chainIDs: string[]; imageSpec: { rootfs: { diff_ids: string[] } } };
  assert.deepEqual(info.imageSpec.rootfs.diff_ids, f.diffIds);
  assert.equal(info.chainIDs.length, 2);
  // By id, by short id and by digest reference.
  assert.equal((await d.cri.image.imageStatus({ image: { image: f.configDigest } })).image?.id, f.configDigest);
  assert.equal((await d.cri.image.imageStatus({ image: { image: f.configDigest.slice(7, 19) } })).image?.id, f.configDigest);
  assert.equal((await d.cri.image.imageStatus({ image: { image: f.digestRef } })).image?.id, f.configDigest);
  // Filter.
  const filtered = await d.cri.image.listImages({ filter: { image: { image: f.ref } } });
  assert.deepEqual(
    filtered.images.map((i) => i.id),
    [f.configDigest],
  );
});

test('zstd, uncompressed and Docker schema 2 images pull', { skip }, async () => {
  for (const name of ['layers-zstd', 'layers-plain', 'tiny-docker']) {
    const f = fx.get(name)!;
    const res = await d.cri.image.pullImage({ image: { image: f.ref } });
    assert.equal(res.imageRef, f.configDigest, name);
  }
});

test('multi-arch index and Docker manifest list: the linux/amd64 image is chosen', { skip }, async () => {
  for (const name of ['multiarch', 'multiarch-docker']) {
    const f = fx.get(name)!;
    const amd = f.children!.find((c) => c.platform.architecture === 'amd64')!;
    const others = f.children!.filter((c) => c.platform.architecture !== 'amd64').map((c) => c.configDigest);
    const res = await d.cri.image.pullImage({ image: { image: f.ref } });
    assert.equal(res.imageRef, amd.configDigest, name);
    assert.ok(!others.includes(res.imageRef));
    const st = await d.cri.image.imageStatus({ image: { image: f.ref } });
    assert.ok(st.image?.repoDigests.includes(f.digestRef), 'repo digest is the index digest');
  }
});

test('image User becomes uid or username as the CRI defines', { skip }, async () => {
  const cases: Array<[string, { uid?: bigint; username: string }]> = [
    ['users-uid', { uid: 1002n, username: '' }],
    ['users-name', { username: 'www-data' }],
    ['users-uid-gid', { uid: 1003n, username: '' }],
    ['users-name-group', { username: 'www-data' }],
  ];
  for (const [name, want] of cases) {
    await d.cri.image.pullImage({ image: { image: fx.get(name)!.ref } });
    const img = (await d.cri.image.imageStatus({ image: { image: fx.get(name)!.ref } })).image!;
    assert.equal(img.uid?.value, want.uid, `${name} uid`);
    assert.equal(img.username, want.username, `${name} username`);
  }
});

test('ImageStatus of an unknown image is an empty response; bad references are INVALID_ARGUMENT', { skip }, async () => {
  const st = await d.cri.image.imageStatus({ image: { image: `${reg.host}/nope:latest` } });
  assert.equal(st.image, undefined);
  await assert.rejects(
    d.cri.image.pullImage({ image: { image: 'UPPER/Case:bad tag' } }),
    (e) => grpcCode(e) === 3 && details(e).includes('UPPER/Case:bad tag'),
  );
  await assert.rejects(d.cri.image.pullImage({ image: { image: '' } }), (e) => grpcCode(e) === 3 && details(e).includes('image'));
  await assert.rejects(d.cri.image.imageStatus({}), (e) => grpcCode(e) === 3);
});

test('unknown repository or tag is NOT_FOUND naming the registry', { skip }, async () => {
  await assert.rejects(
    d.cri.image.pullImage({ image: { image: `${reg.host}/does-not-exist:latest` } }),
    (e) => grpcCode(e) === 5 && details(e).includes(reg.host),
  );
  await assert.rejects(d.cri.image.pullImage({ image: { image: `${reg.host}/tiny:no-such-tag` } }), (e) => grpcCode(e) === 5 && details(e).includes(reg.host));
});

test('registry with auth: no credentials fails clearly; CRI AuthConfig credentials work', { skip }, async () => {
  const ref = `${authReg.host}/private/tiny:v1`;
  await assert.rejects(d.cri.image.pullImage({ image: { image: ref } }), (e) => [16, 7].includes(grpcCode(e)!) && details(e).includes(authReg.host));
  await assert.rejects(
    d.cri.image.pullImage({ image: { image: ref }, auth: { username: 'alice', password: 'wrong' } }),
    (e) => grpcCode(e) === 16 && details(e).includes(authReg.host) && !details(e).includes('wrong'),
  );
  const ok = await d.cri.image.pullImage({ image: { image: ref }, auth: { username: 'alice', password: 's3cret' } });
  assert.match(ok.imageRef, /^sha256:/);
  const b64 = Buffer.from('alice:s3cret').toString('base64');
  await d.cri.image.removeImage({ image: { image: ref } });
  const ok2 = await d.cri.image.pullImage({ image: { image: ref }, auth: { auth: b64 } });
  assert.equal(ok2.imageRef, ok.imageRef);
});

test('hostile layers never write outside the snapshot', { skip }, async () => {
  for (const name of HOSTILE_FIXTURES) {
    const f = fx.get(name)!;
    let pulled = false;
    try {
      await d.cri.image.pullImage({ image: { image: f.ref } });
      pulled = true;
    } catch (err) {
      assert.ok([3, 9, 13].includes(grpcCode(err)!), `${name}: ${details(err)}`);
    }
    for (const p of f.hostile!.mustNotExist) assert.equal(existsSync(p), false, `${name} created ${p} on the host`);
    for (const p of f.hostile!.mustNotLink) assert.equal(statSync(p).nlink, 1, `${name} hard-linked ${p}`);
    if (!pulled) {
      const st = await d.cri.image.imageStatus({ image: { image: f.ref } });
      assert.equal(st.image, undefined, `${name}: a failed pull leaves no image`);
    }
  }
});

test('a blob whose bytes do not match its digest fails the pull and nothing is kept', { skip }, async () => {
  const layer = await buildLayer([{ type: 'file', path: 'corrupt-me', content: 'original content '.repeat(100) }], { compression: 'gzip' }, 'corrupt-layer');
  const img = buildImage([layer], { config: { Cmd: ['/none'] } });
  const pushed = await pushFixture(reg.url, 'corrupt', 'latest', img);
  // Flip bytes of the stored blob inside the registry's storage (same size).
  const hex = layer.digest.slice(7);
  const data = join(reg.dir, 'data', 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
  assert.ok(existsSync(data), `registry blob file ${data}`);
  const buf = readFileSync(data);
  buf[buf.length - 10] ^= 0xff;
  writeFileSync(data, buf);
  // The layer streams into the unpacker while it downloads: whichever check trips first (the
  // digest at the end, or the gzip/tar decoder on the flipped byte) fails the pull.
  await assert.rejects(d.cri.image.pullImage({ image: { image: pushed.ref } }), (e) =>
    /digest|mismatch|invalid layer tar|gzip|incorrect|check/i.test(details(e)),
  );
  assert.equal((await d.cri.image.imageStatus({ image: { image: pushed.ref } })).image, undefined);
  const blob = join(d.root, 'content', 'blobs', 'sha256', hex);
  assert.equal(existsSync(blob), false, 'unverified blob is not in the content store');
  assert.deepEqual(readdirSync(join(d.root, 'content', 'ingest')), [], 'no ingest leftovers');
});

test('concurrent PullImage calls for one image share one pull', { skip }, async () => {
  const layer = await buildLayer([{ type: 'generated', path: 'big.bin', size: 8 * 1024 * 1024, seed: 'shared' }], { compression: 'gzip' }, 'shared-pull');
  const pushed = await pushFixture(reg.url, 'shared', 'latest', buildImage([layer], { config: { Cmd: ['/none'] } }));
  const before = d.log().split('\n').length;
  const results = await Promise.all(Array.from({ length: 5 }, () => d.cri.image.pullImage({ image: { image: pushed.ref } })));
  assert.ok(results.every((r) => r.imageRef === pushed.configDigest));
  const lines = d.log().split('\n').slice(before);
  const blobGets = lines.filter((l) => l.includes('registry http') && l.includes(`/blobs/${layer.digest}`));
  assert.equal(blobGets.length, 1, `layer fetched once, saw:\n${blobGets.join('\n')}`);
});

test(
  'RemoveImage: by one tag removes the image with all its tags (other repositories too); idempotent; unreferenced content and layers are collected',
  { skip },
  async () => {
    const layer = await buildLayer([{ type: 'file', path: 'only-here', content: 'remove me\n' }], { compression: 'gzip' }, 'remove-test');
    const image = buildImage([layer], { config: { Cmd: ['/none'] } });
    const f = await pushFixture(reg.url, 'removable', 'latest', image);
    await d.cri.image.pullImage({ image: { image: f.ref } });
    // Asked once with one tag (berthd keeps its answers while the image records are unchanged):
    // the tags pulled next must show in both calls.
    assert.deepEqual((await d.cri.image.imageStatus({ image: { image: f.ref } })).image?.repoTags, [f.ref]);
    assert.deepEqual((await d.cri.image.listImages({})).images.find((i) => i.id === f.configDigest)?.repoTags, [f.ref]);
    const second = await pushFixture(reg.url, 'removable', 'second', image);
    await d.cri.image.pullImage({ image: { image: second.ref } });
    const other = await pushFixture(reg.url, 'another-repo', 'v1', image);
    await d.cri.image.pullImage({ image: { image: other.ref } });
    const img = (await d.cri.image.imageStatus({ image: { image: f.ref } })).image!;
    assert.deepEqual([...img.repoTags].sort(), [f.ref, second.ref, other.ref].sort());
    const listed = (await d.cri.image.listImages({})).images.find((i) => i.id === f.configDigest);
    assert.deepEqual([...(listed?.repoTags ?? [])].sort(), [f.ref, second.ref, other.ref].sort());
    // The CRI contract (cri-api, late 2025): removing by a single tag removes every tag.
    await d.cri.image.removeImage({ image: { image: second.ref } });
    for (const r of [f.ref, second.ref, other.ref, f.digestRef]) assert.equal((await d.cri.image.imageStatus({ image: { image: r } })).image, undefined, r);
    assert.equal(
      (await d.cri.image.listImages({})).images.some((i) => i.id === f.configDigest),
      false,
    );
    await d.cri.image.removeImage({ image: { image: f.configDigest } });
    await d.cri.image.removeImage({ image: { image: second.ref } });
    await d.cri.image.removeImage({ image: { image: `${reg.host}/never-pulled:1` } });
    // Blobs nothing refers to are collected after the reply.
    const blob = (digest: string): string => join(d.root, 'content', 'blobs', 'sha256', digest.slice(7));
    for (const l of f.layers) await until(() => !existsSync(blob(l.digest)), `layer blob ${l.digest} collected`);
    await until(() => !existsSync(blob(f.configDigest)), 'config collected');
  },
);

test('ImageFsInfo reports bytes and inodes of the snapshot store', { skip }, async () => {
  const res = await d.cri.image.imageFsInfo({});
  const fs = res.imageFilesystems[0]!;
  assert.ok(fs.fsId!.mountpoint.startsWith(d.root), fs.fsId!.mountpoint);
  assert.ok(fs.usedBytes!.value > 0n);
  assert.ok(fs.inodesUsed!.value > 0n);
  assert.ok(fs.timestamp > BigInt(Date.now() - 60_000) * 1_000_000n);
});

test('the sandbox image is pinned', { skip }, async () => {
  const f = fx.get('tiny')!;
  await d.cri.image.pullImage({ image: { image: f.ref } });
  assert.equal((await d.cri.image.imageStatus({ image: { image: f.ref } })).image?.pinned, true);
  assert.equal((await d.cri.image.imageStatus({ image: { image: fx.get('layers-gzip')!.ref } })).image?.pinned, false);
});

test('berthd killed mid-pull: the next start cleans up and the next pull succeeds', { skip }, async () => {
  const layer = await buildLayer([{ type: 'generated', path: 'slow.bin', size: 48 * 1024 * 1024, seed: 'killme' }], { compression: 'none' }, 'kill-mid-pull');
  const pushed = await pushFixture(reg.url, 'killme', 'latest', buildImage([layer], { config: { Cmd: ['/none'] } }));
  const pull = d.cri.image.pullImage({ image: { image: pushed.ref } }).catch((e: unknown) => e);
  // Wait until bytes are landing in the ingest directory, then crash the daemon.
  const ingest = join(d.root, 'content', 'ingest');
  const deadline = Date.now() + 10_000;
  // An ingest file can be renamed away between readdir and lstat (a finished blob): not yet.
  const sizeOf = (n: string): number => {
    try {
      return lstatSync(join(ingest, n)).size;
    } catch {
      return 0;
    }
  };
  // Past 1 MiB it is the 48 MiB layer, not the small config or manifest that finish at once.
  const halfway = (n: string): boolean => sizeOf(n) > 1024 * 1024;
  while (Date.now() < deadline && !(existsSync(ingest) && readdirSync(ingest).some(halfway))) await new Promise((r) => setTimeout(r, 5));
  const partial = existsSync(ingest) ? readdirSync(ingest).filter(halfway) : [];
  assert.ok(partial.length > 0, 'the kill lands while a layer is half downloaded');
  await d.kill9();
  // The pull was really cut off: the client got an error, not an image, and a partial blob is
  // on disk for the next start to clean up.
  const outcome = await pull;
  assert.ok(outcome instanceof Error, `the interrupted pull failed (got ${JSON.stringify(outcome)})`);
  assert.ok(
    readdirSync(ingest).some((n) => partial.includes(n)),
    'the partial download was left behind by the crash',
  );
  await d.restart();
  assert.deepEqual(readdirSync(ingest), [], 'ingest leftovers removed at start');
  const res = await d.cri.image.pullImage({ image: { image: pushed.ref } });
  assert.equal(res.imageRef, pushed.configDigest);
});

test('a mirror endpoint is tried first for its registry host', { skip }, async () => {
  const m = await startBerthd({ mirrors: { 'registry.berth-mirror.test': [reg.url] } });
  try {
    const f = fx.get('tiny')!;
    const res = await m.cri.image.pullImage({ image: { image: 'registry.berth-mirror.test/tiny:latest' } });
    assert.equal(res.imageRef, f.configDigest);
    const img = (await m.cri.image.imageStatus({ image: { image: 'registry.berth-mirror.test/tiny' } })).image!;
    assert.deepEqual(img.repoTags, ['registry.berth-mirror.test/tiny:latest']);
  } finally {
    await m.cleanup();
  }
});

test('berth CLI: pull, images -o json, inspecti, rmi', { skip }, async () => {
  const f = fx.get('layers-gzip')!;
  const cli = (...args: string[]) =>
    new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [join(repoRoot(), 'bin', 'berth'), '--socket', d.socket, ...args],
        { encoding: 'utf8', timeout: 60_000 },
        (err, stdout, stderr) => resolve({ status: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
    });
  const p = await cli('pull', f.ref);
  assert.equal(p.status, 0, p.stderr);
  assert.match(p.stdout, /pulled .* 2 layers/);
  assert.ok(p.stdout.includes(f.configDigest));
  const j = await cli('images', '-o', 'json');
  assert.equal(j.status, 0, j.stderr);
  const imgs = JSON.parse(j.stdout) as { images: Array<{ id: string; size: number }> };
  assert.ok(imgs.images.some((i) => i.id === f.configDigest && typeof i.size === 'number'));
  const t = await cli('images');
  assert.match(t.stdout, /^IMAGE\s+TAG\s+IMAGE ID\s+SIZE/);
  const ins = await cli('inspecti', f.ref);
  assert.equal(ins.status, 0, ins.stderr);
  assert.equal((JSON.parse(ins.stdout) as { status: { id: string } }).status.id, f.configDigest);
  const bad = await cli('pull', 'Bad:Ref!');
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /InvalidArgument: .*Bad:Ref!/);
  const r = await cli('rmi', f.ref);
  assert.equal(r.status, 0, r.stderr);
  assert.equal((await cli('inspecti', f.ref)).status, 1);
});
