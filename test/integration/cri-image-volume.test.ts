/**
 * Image volumes (Mount.image, Mount.image_sub_path) through a real berthd, registry and runc,
 * with requests shaped as kubelet sends them: PullImage first, then CreateContainer with a
 * mount that names the image id, no host path, readonly=true. The container reads the image's
 * files (from both of its layers), cannot write or execute them, gets sub paths, and is refused
 * sub paths that leave the image; one view per (pod, image) is shared and goes with the last
 * container using it; RemoveImage of an image in use is refused and the container keeps working; a berthd
 * restart keeps the view, and leftovers of a crash are swept.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { status as grpcStatus } from '@grpc/grpc-js';
import { NamespaceMode } from '../../src/api/cri/runtime/v1/api_pb.js';
import { startCriEnv, type CriEnv } from '../helpers/cri-env.js';
import { busyboxConfig, createContainer, runPod, runToExit, type ContainerConfigInit, type TestPod } from '../helpers/cri-container.js';
import { buildImage, buildLayer, pushFixture, type PushedFixture } from '../helpers/images.js';

let env: CriEnv;
let pod: TestPod;
let vol: PushedFixture;
let volId: string;
let seq = 0;

before(async () => {
  env = await startCriEnv();
  // Two layers (so the view is an overlay), a script with the exec bit, symlinks inside and out.
  const l1 = await buildLayer(
    [
      { type: 'dir', path: 'data/' },
      { type: 'file', path: 'data/hello.txt', content: 'hello from the image\n' },
      { type: 'file', path: 'data/run.sh', content: '#!/bin/sh\necho ran\n', mode: 0o755 },
      { type: 'dir', path: 'data/sub/' },
      { type: 'file', path: 'data/sub/inner.txt', content: 'inner\n' },
      { type: 'symlink', path: 'data/inlink', target: 'sub' },
      { type: 'symlink', path: 'data/up', target: '../../../../../../../../etc' },
      { type: 'symlink', path: 'abs', target: '/etc' },
      { type: 'file', path: 'plain.txt', content: 'plain\n' },
      { type: 'file', path: 'data/owned.txt', content: 'private\n', mode: 0o600, uid: 1234, gid: 1234 },
    ],
    { compression: 'gzip' },
    `imgvol-l1-${process.pid}`,
  );
  const l2 = await buildLayer([{ type: 'file', path: 'data/second.txt', content: 'from layer two\n' }], { compression: 'gzip' }, `imgvol-l2-${process.pid}`);
  vol = await pushFixture(env.registry.url, 'imgvol/content', 'v1', buildImage([l1, l2]));
  await env.berthd.cri.image.pullImage({ image: { image: env.busybox.ref } });
  pod = await runPod(env);
});

after(async () => {
  await pod?.remove();
  await env?.cleanup();
});

/** kubelet: PullImage, then use the image_ref it returned. */
async function pullVolume(): Promise<string> {
  volId = (await env.berthd.cri.image.pullImage({ image: { image: vol.ref } })).imageRef;
  return volId;
}

type MountInit = NonNullable<ContainerConfigInit['mounts']>[number];
const imageMount = (containerPath: string, image: string, imageSubPath = '') => ({ containerPath, image: { image }, imageSubPath, readonly: true });

function ctr(name: string, command: string[], mounts: ContainerConfigInit['mounts']): ContainerConfigInit {
  return busyboxConfig(env, `${name}-${++seq}`, command, { mounts });
}

/** A failed assertion must not leave containers behind for the next test. */
async function removeContainersOf(p: TestPod): Promise<void> {
  const l = await env.berthd.cri.runtime.listContainers({ filter: { podSandboxId: p.id } });
  for (const c of l.containers) await env.berthd.cri.runtime.removeContainer({ containerId: c.id });
}

/** Mount points under <state>/imgvol/<pod> on the host. */
function viewMounts(podId = pod.id): string[] {
  const root = join(env.berthd.state, 'imgvol', podId);
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((p) => p.startsWith(`${root}/`));
}

test('a container reads both layers of an image volume; it is read-only, noexec, nosuid, nodev; sub paths (also through a symlink inside) work', async (t) => {
  t.after(() => removeContainersOf(pod));
  const id = await pullVolume();
  const script = [
    'cat /vol/data/hello.txt /vol/data/second.txt',
    '(echo x > /vol/data/new) 2>/dev/null && echo WRITABLE || echo READONLY',
    '/vol/data/run.sh 2>/dev/null && echo EXECUTED || echo NOEXEC',
    'grep " /vol " /proc/mounts | cut -d" " -f4',
    'cat /sub/inner.txt /link/inner.txt',
    'ls /sub',
  ].join('; ');
  const r = await runToExit(
    env,
    pod,
    ctr('reader', ['sh', '-c', script], [imageMount('/vol', id), imageMount('/sub', id, 'data/sub'), imageMount('/link', id, 'data/inlink')]),
  );
  const lines = r.log.map((l) => l.msg);
  assert.equal(r.status.exitCode, 0, lines.join('\n'));
  assert.deepEqual(lines.slice(0, 4), ['hello from the image', 'from layer two', 'READONLY', 'NOEXEC']);
  const opts = lines[4]!.split(',');
  for (const o of ['ro', 'nosuid', 'nodev', 'noexec']) assert.ok(opts.includes(o), `mount options ${lines[4]} lack ${o}`);
  assert.deepEqual(lines.slice(5), ['inner', 'inner', 'inner.txt']);
  assert.equal(viewMounts().length, 1, 'one view for the image, shared by the three mounts');
  await env.berthd.cri.runtime.removeContainer({ containerId: r.id });
  assert.deepEqual(viewMounts(), [], 'the view goes with the last container using it');
  assert.equal(existsSync(join(env.berthd.state, 'imgvol', pod.id)), false);
});

test('a single-layer image (busybox) as a volume: its binaries are there but cannot be executed', async (t) => {
  t.after(() => removeContainersOf(pod));
  const bb = (await env.berthd.cri.image.imageStatus({ image: { image: env.busybox.ref } })).image!.id;
  const r = await runToExit(
    env,
    pod,
    ctr(
      'bbvol',
      ['sh', '-c', 'test -f /tools/bin/busybox && echo PRESENT; /tools/bin/busybox true 2>/dev/null && echo EXECUTED || echo NOEXEC'],
      [imageMount('/tools', bb)],
    ),
  );
  assert.deepEqual(
    r.log.map((l) => l.msg),
    ['PRESENT', 'NOEXEC'],
  );
  await env.berthd.cri.runtime.removeContainer({ containerId: r.id });
  assert.deepEqual(viewMounts(), []);
});

test('sub paths that leave the image, do not exist or are files, and malformed image mounts fail naming the field; nothing is left', async (t) => {
  t.after(() => removeContainersOf(pod));
  const id = await pullVolume();
  const cases: Array<{ mount: object; code: grpcStatus; match: RegExp }> = [
    { mount: imageMount('/v', id, 'data/up'), code: grpcStatus.INVALID_ARGUMENT, match: /mounts\[0\]\.image_sub_path "data\/up" leads out of image/ },
    { mount: imageMount('/v', id, 'abs'), code: grpcStatus.INVALID_ARGUMENT, match: /image_sub_path "abs" leads out/ },
    { mount: imageMount('/v', id, 'data/../../etc'), code: grpcStatus.INVALID_ARGUMENT, match: /image_sub_path.*"\.\." is not allowed/ },
    { mount: imageMount('/v', id, 'data/nope'), code: grpcStatus.NOT_FOUND, match: /image_sub_path "data\/nope" does not exist in image/ },
    { mount: imageMount('/v', id, 'plain.txt'), code: grpcStatus.INVALID_ARGUMENT, match: /image_sub_path "plain.txt" is not a directory/ },
    { mount: imageMount('/v', `sha256:${'0'.repeat(64)}`), code: grpcStatus.NOT_FOUND, match: /mounts\[0\]\.image\.image: image "sha256:0+" not found/ },
    { mount: { ...imageMount('/v', id), readonly: false }, code: grpcStatus.INVALID_ARGUMENT, match: /mounts\[0\]\.readonly must be true/ },
    { mount: { ...imageMount('/v', id), hostPath: '/etc' }, code: grpcStatus.INVALID_ARGUMENT, match: /mounts\[0\]\.host_path must be empty/ },
  ];
  const before = (await env.berthd.cri.runtime.listContainers({})).containers.length;
  for (const c of cases) {
    await assert.rejects(
      createContainer(env, pod, ctr('bad', ['true'], [c.mount as MountInit])),
      (e: { code?: number; details?: string }) => e.code === c.code && c.match.test(e.details ?? ''),
      JSON.stringify(c.mount),
    );
  }
  assert.equal((await env.berthd.cri.runtime.listContainers({})).containers.length, before);
  assert.deepEqual(viewMounts(), [], 'a failed create leaves no view');
});

test('two containers of a pod (created at once) share one view; it stays until the second is removed', async (t) => {
  t.after(() => removeContainersOf(pod));
  const id = await pullVolume();
  // Concurrent creates (kubelet serialises them, crictl need not) still make one view.
  const [a, b] = await Promise.all([
    createContainer(env, pod, ctr('share-a', ['sleep', '600'], [imageMount('/vol', id)])),
    createContainer(env, pod, ctr('share-b', ['sleep', '600'], [imageMount('/vol', id, 'data')])),
  ]);
  assert.equal(viewMounts().length, 1);
  await env.berthd.cri.runtime.removeContainer({ containerId: a });
  assert.equal(viewMounts().length, 1, 'still used by the second container');
  await env.berthd.cri.runtime.startContainer({ containerId: b });
  const r = await env.berthd.cri.runtime.execSync({ containerId: b, cmd: ['cat', '/vol/hello.txt'], timeout: 10n });
  assert.equal(Buffer.from(r.stdout).toString(), 'hello from the image\n');
  await env.berthd.cri.runtime.removeContainer({ containerId: b });
  assert.deepEqual(viewMounts(), []);
});

test('RemoveImage of an image in use as a volume is refused naming the container (as CRI-O); the container keeps reading it; once it is removed the image goes with its layers', async (t) => {
  t.after(() => removeContainersOf(pod));
  const id = await pullVolume();
  const c = await createContainer(env, pod, ctr('inuse', ['sleep', '600'], [imageMount('/vol', id)]));
  await env.berthd.cri.runtime.startContainer({ containerId: c });
  const st = await env.berthd.cri.runtime.containerStatus({ containerId: c });
  assert.equal(
    st.status?.mounts.find((m) => m.containerPath === '/vol')?.image?.image,
    id,
    'ContainerStatus names the image of the volume (kubelet image GC reads it)',
  );
  for (const spec of [id, vol.ref]) {
    await assert.rejects(env.berthd.cri.image.removeImage({ image: { image: spec } }), (err: { code?: number; details?: string }) => {
      assert.equal(err.code, grpcStatus.FAILED_PRECONDITION);
      assert.match(err.details ?? '', new RegExp(`image volume by container ${c}`));
      return true;
    });
  }
  const listed = await env.berthd.cri.image.listImages({});
  assert.ok(
    listed.images.some((i) => i.id === id),
    'the image is still listed',
  );
  const r = await env.berthd.cri.runtime.execSync({ containerId: c, cmd: ['cat', '/vol/data/second.txt'], timeout: 10n });
  assert.equal(Buffer.from(r.stdout).toString(), 'from layer two\n');
  const fsKept = (await env.berthd.cri.image.imageFsInfo({})).imageFilesystems[0]!.usedBytes!.value;
  await env.berthd.cri.runtime.removeContainer({ containerId: c });
  assert.deepEqual(viewMounts(), []);
  await env.berthd.cri.image.removeImage({ image: { image: id } });
  assert.ok(!(await env.berthd.cri.image.listImages({})).images.some((i) => i.id === id), 'the image is gone once unused');
  const deadline = Date.now() + 20_000;
  let fsAfter = fsKept;
  while (Date.now() < deadline) {
    fsAfter = (await env.berthd.cri.image.imageFsInfo({})).imageFilesystems[0]!.usedBytes!.value;
    if (fsAfter < fsKept) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  assert.ok(fsAfter < fsKept, `its layers are collected (${fsKept} → ${fsAfter})`);
});

test('a view survives a berthd crash and restart; a new container reuses it; a leftover view mount is swept at start', async (t) => {
  t.after(() => removeContainersOf(pod));
  const id = await pullVolume();
  const c = await createContainer(env, pod, ctr('survivor', ['sleep', '600'], [imageMount('/vol', id)]));
  await env.berthd.cri.runtime.startContainer({ containerId: c });
  // A view no record names, as a berthd that died mid-create would leave it.
  const stray = join(env.berthd.state, 'imgvol', 'f00d', 'a'.repeat(64));
  mkdirSync(stray, { recursive: true });
  assert.equal(spawnSync('mount', ['-t', 'tmpfs', 'stray', stray]).status, 0);
  await env.berthd.kill9();
  await env.berthd.restart();
  assert.equal(existsSync(stray), false, 'the stray view was unmounted and removed');
  assert.equal(viewMounts('f00d').length, 0);
  assert.equal(viewMounts().length, 1, 'the used view stays mounted');
  const r = await env.berthd.cri.runtime.execSync({ containerId: c, cmd: ['cat', '/vol/data/hello.txt'], timeout: 10n });
  assert.equal(Buffer.from(r.stdout).toString(), 'hello from the image\n');
  const again = await runToExit(env, pod, ctr('after-restart', ['cat', '/vol/sub/inner.txt'], [imageMount('/vol', id, 'data')]));
  assert.deepEqual(
    again.log.map((l) => l.msg),
    ['inner'],
  );
  assert.equal(viewMounts().length, 1);
  for (const x of [again.id, c]) await env.berthd.cri.runtime.removeContainer({ containerId: x });
  assert.deepEqual(viewMounts(), []);
});

test('removing the pod removes its views', async () => {
  const id = await pullVolume();
  const other = await runPod(env);
  try {
    await createContainer(env, other, ctr('podgone', ['sleep', '600'], [imageMount('/vol', id)]));
    assert.equal(viewMounts(other.id).length, 1);
  } finally {
    await other.remove();
  }
  assert.deepEqual(viewMounts(other.id), []);
  assert.equal(existsSync(join(env.berthd.state, 'imgvol', other.id)), false);
});

const usernsSkip = (() => {
  if ((statSync('/').mode & 0o001) === 0) return '/ is not searchable by others here: user-namespace pods cannot run';
  return spawnSync('unshare', ['--user', '/bin/true']).status === 0 ? false : 'unshare --user fails here';
})();

test(
  'in a hostUsers=false pod (mounts carry the pod mappings, as kubelet sends them) the view is idmapped: image ids show as they are',
  { skip: usernsSkip },
  async () => {
    const id = await pullVolume();
    const uids = [{ hostId: 400000, containerId: 0, length: 65536 }];
    const gids = [{ hostId: 500000, containerId: 0, length: 65536 }];
    const upod = await runPod(env, {
      linux: {
        securityContext: {
          namespaceOptions: {
            network: NamespaceMode.POD,
            ipc: NamespaceMode.POD,
            pid: NamespaceMode.CONTAINER,
            usernsOptions: { mode: NamespaceMode.POD, uids, gids },
          },
        },
      },
    });
    try {
      const script =
        'cat /vol/data/hello.txt; (echo x > /vol/x) 2>/dev/null || echo READONLY; stat -c "%u:%g" /vol/data/owned.txt /vol/data/hello.txt; cat /vol/data/owned.txt; ls /vol';
      const one = [{ ...imageMount('/vol', id), uidMappings: uids, gidMappings: gids }];
      const r = await runToExit(env, upod, ctr('userns', ['sh', '-c', script], one));
      // Idmapped with the pod's namespace: the image's ids show as they are, and the container's
      // root reads a 0600 file of uid 1234 (an unmapped owner would deny it).
      assert.deepEqual(
        r.log.map((l) => l.msg),
        ['hello from the image', 'READONLY', '1234:1234', '0:0', 'private', 'abs', 'data', 'plain.txt'],
      );
      // A single-layer image (busybox) too: its binaries belong to root inside.
      const bb = (await env.berthd.cri.image.imageStatus({ image: { image: env.busybox.ref } })).image!.id;
      const r2 = await runToExit(
        env,
        upod,
        ctr('userns-bb', ['stat', '-c', '%u', '/tools/bin/busybox'], [{ ...imageMount('/tools', bb), uidMappings: uids, gidMappings: gids }]),
      );
      assert.deepEqual(
        r2.log.map((l) => l.msg),
        ['0'],
      );
      assert.equal(viewMounts(upod.id).length, 2);
    } finally {
      await upod.remove();
    }
    assert.deepEqual(viewMounts(upod.id), []);
  },
);

test('Status advertises mount_options', async () => {
  const st = await env.berthd.cri.runtime.status({});
  assert.equal(st.features?.mountOptions, true);
});
