/**
 * The fixture images and the test registry, checked by third-party clients: Debian's skopeo
 * reads every pushed fixture back from Debian's docker-registry (digests, platforms, configs),
 * and umoci unpacks some of them (the layers are valid tars, whiteouts mean what we intend).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, lstatSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { pushAllFixtures, pushFixture, fixture, busyboxAvailable, type PushedFixture } from '../helpers/images.js';
import { PushError } from '../helpers/oci-push.js';
import { startContainerd } from '../../bench/containerd.js';
import { connectCri } from '../../src/cri/server/client.js';

const run = promisify(execFile);

async function skopeo(args: string[]): Promise<string> {
  const { stdout } = await run('skopeo', args, { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

interface SkopeoInspect {
  Digest: string;
  Architecture: string;
  Os: string;
  Layers: string[];
  Env?: string[];
  Labels?: Record<string, string> | null;
}

async function inspect(ref: string, extra: string[] = []): Promise<SkopeoInspect> {
  return JSON.parse(await skopeo(['inspect', '--tls-verify=false', '--no-creds', ...extra, `docker://${ref}`])) as SkopeoInspect;
}

const sha = (s: string): string => 'sha256:' + createHash('sha256').update(s).digest('hex');

function get(pushed: Map<string, PushedFixture>, name: string): PushedFixture {
  const p = pushed.get(name);
  assert.ok(p, `fixture ${name} was pushed`);
  return p;
}

describe('fixtures in a plain registry', () => {
  let reg: TestRegistry;
  let pushed: Map<string, PushedFixture>;
  let work: string;

  before(async () => {
    reg = await startRegistry();
    pushed = await pushAllFixtures(reg);
    work = mkdtempSync(join(tmpdir(), 'berth-fixtures-test-'));
  });
  after(async () => {
    await reg?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test('the registry stops and removes its directory', async () => {
    const r = await startRegistry();
    assert.ok(existsSync(r.dir));
    await r.stop();
    assert.equal(existsSync(r.dir), false);
    await r.stop(); // idempotent
  });

  test('a registry that cannot start is reported with its log', async () => {
    await assert.rejects(startRegistry({ binary: '/bin/false', startTimeoutMs: 5000 }), /exited early/);
  });

  test('skopeo reads every fixture with the digests we pushed', async () => {
    assert.ok(pushed.size >= 19);
    for (const [name, p] of pushed) {
      const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', '--no-creds', `docker://${p.ref}`]);
      assert.equal(sha(raw), p.manifestDigest, `${name}: raw manifest digest`);
      const info = await inspect(p.ref);
      assert.equal(info.Digest, p.manifestDigest, `${name}: digest`);
      assert.equal(info.Os, 'linux');
      assert.equal(info.Architecture, 'amd64', `${name}: amd64 chosen`);
      assert.deepEqual(
        info.Layers,
        p.layers.map((l) => l.digest),
        `${name}: layers`,
      );
    }
  });

  test('tiny carries its config and both manifest formats name the same content', async () => {
    const oci = get(pushed, 'tiny');
    const docker = get(pushed, 'tiny-docker');
    assert.deepEqual(oci.diffIds, docker.diffIds);
    assert.notEqual(oci.manifestDigest, docker.manifestDigest);
    const cfg = JSON.parse(await skopeo(['inspect', '--config', '--tls-verify=false', '--no-creds', `docker://${oci.ref}`])) as {
      config: { User: string; WorkingDir: string; Entrypoint: string[]; Cmd: string[]; Volumes: object; ExposedPorts: object; StopSignal: string };
      rootfs: { diff_ids: string[] };
    };
    assert.equal(cfg.config.User, 'www-data');
    assert.equal(cfg.config.WorkingDir, '/srv');
    assert.deepEqual(cfg.config.Entrypoint, ['/bin/app']);
    assert.deepEqual(cfg.config.Cmd, ['--serve']);
    assert.deepEqual(cfg.config.Volumes, { '/data': {} });
    assert.deepEqual(cfg.config.ExposedPorts, { '8080/tcp': {}, '53/udp': {} });
    assert.equal(cfg.config.StopSignal, 'SIGQUIT');
    assert.deepEqual(cfg.rootfs.diff_ids, oci.diffIds);
  });

  test('multiarch indexes resolve to a different child per platform', async () => {
    for (const name of ['multiarch', 'multiarch-docker']) {
      const p = get(pushed, name);
      assert.equal(p.children?.length, 3);
      const arm64 = p.children?.find((c) => c.platform.architecture === 'arm64');
      const amd64 = p.children?.find((c) => c.platform.architecture === 'amd64');
      assert.ok(arm64 && amd64);
      assert.notDeepEqual(arm64.diffIds, amd64.diffIds);
      const info = await inspect(p.ref, ['--override-arch', 'arm64', '--override-variant', 'v8']);
      assert.equal(info.Architecture, 'arm64');
      assert.deepEqual(
        info.Layers,
        arm64.layers.map((l) => l.digest),
      );
      const arm = await inspect(p.ref, ['--override-arch', 'arm', '--override-variant', 'v7']);
      assert.equal(arm.Architecture, 'arm');
      // Children are also reachable by digest.
      const byDigest = await inspect(`${reg.host}/${p.repo}@${arm64.manifestDigest}`);
      assert.equal(byDigest.Digest, arm64.manifestDigest);
    }
  });

  test('gzip, zstd and plain variants hold identical layer contents', () => {
    const g = get(pushed, 'layers-gzip');
    const z = get(pushed, 'layers-zstd');
    const n = get(pushed, 'layers-plain');
    assert.deepEqual(g.diffIds, z.diffIds);
    assert.deepEqual(g.diffIds, n.diffIds);
    // Uncompressed layers: digest == diff id.
    assert.deepEqual(
      n.layers.map((l) => l.digest),
      n.diffIds,
    );
    assert.notDeepEqual(
      g.layers.map((l) => l.digest),
      z.layers.map((l) => l.digest),
    );
  });

  test('umoci unpacks tiny and applies the whiteouts fixture as intended', async () => {
    for (const name of ['tiny', 'whiteouts']) {
      const p = get(pushed, name);
      await skopeo(['copy', '--insecure-policy', '--src-tls-verify=false', '--src-no-creds', `docker://${p.ref}`, `oci:${join(work, 'layout')}:${name}`]);
      await run('umoci', ['unpack', '--image', `${join(work, 'layout')}:${name}`, join(work, name)], { timeout: 60_000 });
    }
    const tiny = join(work, 'tiny', 'rootfs');
    assert.equal(readFileSync(join(tiny, 'srv/hello.txt'), 'utf8'), 'hello from tiny\n');
    assert.equal(readlinkSync(join(tiny, 'srv/hello-link')), 'hello.txt');
    assert.equal(lstatSync(join(tiny, 'srv/hello-hard')).ino, lstatSync(join(tiny, 'srv/hello.txt')).ino);
    assert.equal(lstatSync(join(tiny, 'data')).uid, 33);
    assert.match(readFileSync(join(tiny, 'etc/passwd'), 'utf8'), /^www-data:x:33:33:/m);

    const w = join(work, 'whiteouts', 'rootfs');
    assert.ok(existsSync(join(w, 'a/keep')));
    assert.equal(existsSync(join(w, 'a/remove-me')), false);
    assert.equal(existsSync(join(w, 'a/remove-dir')), false);
    assert.equal(existsSync(join(w, 'opaque/old1')), false);
    assert.equal(existsSync(join(w, 'opaque/sub')), false);
    assert.ok(existsSync(join(w, 'opaque/new')));
  });

  test('users fixtures carry the four User forms', async () => {
    const want: Record<string, string> = { 'users-uid': '1002', 'users-name': 'www-data', 'users-uid-gid': '1003:100', 'users-name-group': 'www-data:users' };
    for (const [name, user] of Object.entries(want)) {
      const cfg = JSON.parse(await skopeo(['inspect', '--config', '--tls-verify=false', '--no-creds', `docker://${get(pushed, name).ref}`])) as {
        config: { User: string };
      };
      assert.equal(cfg.config.User, user, name);
    }
  });

  test('hostile fixtures name host paths that do not exist yet', () => {
    let count = 0;
    for (const p of pushed.values()) {
      if (!p.hostile) continue;
      count++;
      assert.ok(p.hostile.mustNotExist.length + p.hostile.mustNotLink.length > 0, p.name);
      for (const path of p.hostile.mustNotExist) assert.equal(existsSync(path), false, path);
    }
    assert.equal(count, 7);
  });

  test(
    'busybox and pause are runnable images when a static busybox exists',
    {
      skip: !busyboxAvailable() && !process.env.CI && 'no static busybox here (apt-get install busybox-static; .ci/run does, and under CI a missing one fails)',
    },
    async () => {
      assert.ok(busyboxAvailable(), 'CI installs busybox-static');
      const pause = get(pushed, 'pause');
      const busybox = get(pushed, 'busybox');
      assert.deepEqual(
        pause.layers.map((l) => l.digest),
        busybox.layers.map((l) => l.digest),
      );
      const info = await inspect(pause.ref);
      assert.equal(info.Layers.length, 1);
    },
  );
});

describe('fixtures in a registry with basic auth', () => {
  const auth = { username: 'berth', password: 's3cret-pass' };
  let reg: TestRegistry;
  let pushed: PushedFixture;

  before(async () => {
    reg = await startRegistry({ auth });
    pushed = await pushFixture(reg.url, 'tiny', 'v1', await fixture('tiny'), auth);
  });
  after(async () => {
    await reg?.stop();
  });

  test('an anonymous push is refused with 401', async () => {
    await assert.rejects(pushFixture(reg.url, 'anon', 'v1', await fixture('tiny')), (err: unknown) => err instanceof PushError && err.status === 401);
  });

  test('skopeo without credentials fails and with them reads the image', async () => {
    await assert.rejects(skopeo(['inspect', '--tls-verify=false', '--no-creds', `docker://${pushed.ref}`]), /unauthorized|authentication required|401/i);
    await assert.rejects(
      skopeo(['inspect', '--tls-verify=false', '--creds', 'berth:wrong', `docker://${pushed.ref}`]),
      /unauthorized|authentication required|401/i,
    );
    const out = JSON.parse(
      await skopeo(['inspect', '--tls-verify=false', '--creds', `${auth.username}:${auth.password}`, `docker://${pushed.ref}`]),
    ) as SkopeoInspect;
    assert.equal(out.Digest, pushed.manifestDigest);
  });
});

describe('containerd pulls the fixtures through CRI (the pull bench harness)', () => {
  test('tiny, zstd layers and the multiarch index pull; image ids are the amd64 config digests', async (t) => {
    const reg = await startRegistry();
    t.after(() => reg.stop());
    const names = ['tiny', 'layers-zstd', 'multiarch-docker'] as const;
    const pushed = await pushAllFixtures(reg, { names: [...names] });
    const daemon = await startContainerd({ registryHost: reg.host });
    t.after(() => daemon.stop());
    const cri = connectCri(daemon.socket);
    t.after(() => cri.close());
    for (const name of names) {
      const p = get(pushed, name);
      const res = await cri.image.pullImage({ image: { image: p.ref } }, { timeoutMs: 60_000 });
      assert.equal(res.imageRef, p.configDigest, name);
    }
    await assert.rejects(cri.image.pullImage({ image: { image: `${reg.host}/missing:1` } }, { timeoutMs: 60_000 }), /not found/i);
  });
});
