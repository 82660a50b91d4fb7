/**
 * Disk full (issue 12) under berth's two other stores, on small tmpfs mounts made for the test
 * (fault-disk-full.test.ts has the content dir and a pod's log dir):
 *
 * - the snapshots dir during a layer unpack (the content store has room): PullImage fails
 *   RESOURCE_EXHAUSTED `storage.no_space` through the unpack workers, no image record, no
 *   snapshot row or directory (committed, active, staging) left, the daemon serves on; a
 *   restart while the fs is still small starts and sweeps leftovers; once the fs grows the same
 *   pull succeeds and its image runs a container.
 * - the metadata database (`<root>/meta.db`, a symlink to a file on the tmpfs: SQLite resolves
 *   it, so its -wal and -shm live there too): a RunPodSandbox whose last record write finds the
 *   fs full (paused there with BERTH_FAULT, the WAL truncated, the rest of the fs filled) gets
 *   RESOURCE_EXHAUSTED `storage.no_space`; its undo leaves no netns, IP, pin process, dirs,
 *   record or name although the undo's own deletes find the disk full too; the records already
 *   there stay intact (integrity_check ok, the READY pod listed); reads are served; berthd
 *   restarts while full; once space returns the same call succeeds.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, statfsSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ContainerState, PodSandboxState } from '../../src/api/cri/runtime/v1/api_pb.js';
import { startCriEnv, type CriEnv } from '../helpers/cri-env.js';
import { busyboxConfig, waitForState } from '../helpers/cri-container.js';
import { isRoot, uniqueTag } from '../helpers/netns.js';
import { BUSYBOX_PATH, buildImage, buildLayer, fixture, pushFixture, type FixtureManifest } from '../helpers/images.js';
import { awaitPause, fillFilesystem, inventory, leaks, resume, settledLeaks, snapshotterRoot, type Inventory } from '../helpers/faults.js';
import { until } from '../helpers/process.js';

const skip = !isRoot() ? 'needs root' : false;
let env: CriEnv | undefined;
const mounts: string[] = [];
const dirs: string[] = [];
const faultDir = mkdtempSync(join(tmpdir(), 'berth-fault-disk-'));
dirs.push(faultDir);
const faultEnv: Record<string, string> = { BERTH_FAULT: '', BERTH_FAULT_DIR: faultDir };

function sh(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
}
function mountTmpfs(at: string, bytes: number): void {
  sh('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=0700`, 'berth-fault-tmpfs', at]);
  mounts.push(at);
}
const resize = (at: string, bytes: number | string) => sh('mount', ['-o', `remount,size=${bytes}`, at]);

before(async () => {
  if (skip) return;
  env = await startCriEnv({ env: faultEnv });
});
after(async () => {
  await env?.cleanup().catch(() => undefined);
  for (const m of mounts.reverse()) spawnSync('umount', ['-l', m]);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const rt = () => env!.berthd.cri.runtime;
const details = (err: unknown) => String((err as { details?: string }).details ?? (err as Error).message);
const berthCode = (err: unknown) => String((err as { metadata?: { get(k: string): unknown[] } }).metadata?.get('berth-error-code')[0] ?? '');
function assertNoSpace(err: unknown): true {
  assert.equal((err as { code?: number }).code, 8, `RESOURCE_EXHAUSTED, got: ${(err as { code?: number }).code} ${details(err)}`);
  assert.equal(berthCode(err), 'storage.no_space', `storage.no_space, got ${berthCode(err)}: ${details(err)}`);
  assert.match(details(err), /no space left on device/);
  return true;
}
const podConfig = (name: string) => ({ metadata: { name, namespace: 'default', uid: `uid-${name}-${uniqueTag()}`, attempt: 0 } });

test(
  'disk full under the snapshots dir during unpack: RESOURCE_EXHAUSTED, no snapshot or staging dir left, restart sweeps, the pull succeeds once space returns',
  { skip, timeout: 300_000 },
  async () => {
    const e = env!;
    // busybox's layer (fits) and a second layer of ≈ 6 MiB that does not: the second one streams
    // into a staging dir while the first unpacks (overlayfs), or after it (native).
    const bb = (await fixture('busybox')) as FixtureManifest;
    const big = await buildLayer(
      [{ type: 'generated', path: 'fill/blob.bin', size: 6 << 20, seed: 'disk-full-unpack' }],
      { compression: 'gzip' },
      'disk-full-unpack',
    );
    const image = buildImage([bb.layers[0]!, big], { config: { Cmd: ['sh'], Env: ['PATH=/bin:/usr/bin:/sbin:/usr/sbin'] } });
    const pushed = await pushFixture(e.registry.url, 'disk-full-unpack', 'latest', image);

    // Nothing unpacked yet: the snapshots dir moves onto a tmpfs with room for busybox's layer
    // plus 1 MiB; berthd restarts on it.
    await e.berthd.stop();
    const snapRoot = snapshotterRoot(e);
    const snaps = join(snapRoot, 'snapshots');
    assert.deepEqual(readdirSync(snaps), [], 'nothing unpacked before the test');
    const room = statSync(BUSYBOX_PATH).size + (1 << 20);
    mountTmpfs(snaps, room);
    await e.berthd.restart();
    const snapRows = () => {
      const db = new Database(join(snapRoot, 'metadata.db'), { readonly: true, fileMustExist: true });
      try {
        return db.prepare('SELECT key, kind FROM snapshots').all() as { key: string; kind: string }[];
      } finally {
        db.close();
      }
    };

    await assert.rejects(e.berthd.cri.image.pullImage({ image: { image: pushed.ref } }), assertNoSpace);
    const st = await e.berthd.cri.image.imageStatus({ image: { image: pushed.ref } });
    assert.equal(st.image, undefined, 'no image record');
    // The failed layer's snapshot, its staging dir and (the pull failing as a whole) nothing
    // half-made stays: no active snapshot, no directory without a row.
    await until(() => snapRows().every((r) => r.kind === 'committed'), 'no active (extract-) snapshot left', 30_000);
    const committed = new Set(snapRows().map((r) => r.key));
    const sn = (await e.berthd.cri.image.imageFsInfo({})).imageFilesystems;
    assert.ok(sn.length > 0, 'ImageFsInfo answers');
    const leftDirs = () => readdirSync(snaps).filter((d) => !/^[0-9]+$/.test(d));
    assert.deepEqual(leftDirs(), [], 'no staging or rm- dir left');
    assert.equal(readdirSync(snaps).length, committed.size, 'one directory per committed snapshot, nothing else');
    assert.ok((await rt().version({})).runtimeName, 'berthd keeps serving');
    assert.ok(Array.isArray((await e.berthd.cri.image.listImages({})).images), 'ListImages answers');

    // What a berthd killed mid-unpack leaves (a staging dir, a half-removed snapshot): a restart
    // on the still small fs starts and sweeps them.
    mkdirSync(join(snaps, 'staging-0123456789ab'));
    writeFileSync(join(snaps, 'staging-0123456789ab', 'part'), Buffer.alloc(64 << 10));
    mkdirSync(join(snaps, 'rm-999999'));
    await e.berthd.stop();
    await e.berthd.restart();
    assert.ok((await rt().version({})).runtimeName, 'berthd restarted on the small fs');
    assert.deepEqual(leftDirs(), [], 'the restart swept the leftovers');
    assert.ok(
      snapRows().every((r) => r.kind === 'committed'),
      'no active snapshot after restart',
    );

    resize(snaps, '256m');
    await e.berthd.cri.image.pullImage({ image: { image: pushed.ref } });
    const pod = (await rt().runPodSandbox({ config: podConfig('disk-full-unpack') })).podSandboxId;
    const c = (
      await rt().createContainer({
        podSandboxId: pod,
        config: busyboxConfig(e, 'c', ['sh', '-c', 'test -s /fill/blob.bin'], { image: { image: pushed.ref } }),
        sandboxConfig: podConfig('disk-full-unpack'),
      })
    ).containerId;
    await rt().startContainer({ containerId: c });
    const s = await waitForState(e, c, ContainerState.CONTAINER_EXITED, 60_000);
    assert.equal(s.exitCode, 0, 'the image pulled after the disk filled runs, its second layer present');
    await rt().stopPodSandbox({ podSandboxId: pod });
    await rt().removePodSandbox({ podSandboxId: pod });
    await e.berthd.cri.image.removeImage({ image: { image: pushed.ref } });
  },
);

test(
  'disk full under meta.db: RESOURCE_EXHAUSTED storage.no_space, the undo leaves nothing, records intact, restarts, the same call succeeds once space returns',
  { skip, timeout: 300_000 },
  async () => {
    const e = env!;
    const meta = join(e.berthd.root, 'meta.db');
    // meta.db (and its -wal, -shm: SQLite puts them next to the file a symlink names) moves
    // onto a 4 MiB tmpfs. RunPodSandbox pauses before its record becomes READY, CreateContainer
    // before its record is written.
    await e.berthd.stop();
    const metaDir = mkdtempSync(join(tmpdir(), 'berth-fault-meta-'));
    dirs.push(metaDir);
    mountTmpfs(metaDir, 4 << 20);
    for (const f of readdirSync(e.berthd.root).filter((n) => n.startsWith('meta.db'))) {
      cpSync(join(e.berthd.root, f), join(metaDir, f));
      rmSync(join(e.berthd.root, f));
    }
    symlinkSync(join(metaDir, 'meta.db'), meta);
    const RUN_STEP = 'RunPodSandbox.record-ready';
    const CREATE_STEP = 'CreateContainer.record';
    faultEnv['BERTH_FAULT'] = `${RUN_STEP}:pause,${CREATE_STEP}:pause`;
    await e.berthd.restart();
    const base = inventory(e);
    assert.ok(existsSync(join(metaDir, 'meta.db-wal')), 'the WAL lives on the tmpfs');
    /** The call, let through its pause at `step`. */
    const passing = async <T>(step: string, call: Promise<T>): Promise<T> => {
      // The call may also fail before its pause (then its error is the test's failure).
      let settled = false;
      call.then(
        () => (settled = true),
        () => (settled = true),
      );
      await until(() => settled || existsSync(join(faultDir, step)), `berthd paused at ${step}`, 60_000);
      resume(faultDir, step);
      return call;
    };
    /** The call, paused at `step` while the WAL is checkpointed and truncated (any write then needs new blocks) and the fs filled. */
    const filler = join(metaDir, 'filler');
    const failing = async <T>(step: string, call: Promise<T>): Promise<Inventory> => {
      call.catch(() => undefined);
      await awaitPause(faultDir, step);
      const made = inventory(e);
      const side = new Database(meta);
      try {
        const [ck] = side.pragma('wal_checkpoint(TRUNCATE)') as { busy: number }[];
        assert.equal(ck?.busy, 0, 'WAL checkpointed');
      } finally {
        side.close();
      }
      fillFilesystem(filler);
      assert.equal(statfsSync(metaDir).bavail, 0, 'the metadata fs is full');
      resume(faultDir, step);
      await assert.rejects(call, assertNoSpace);
      return made;
    };
    const dbCheck = () => {
      const db = new Database(meta, { readonly: true, fileMustExist: true });
      try {
        assert.deepEqual(db.pragma('integrity_check', { simple: true }), 'ok', 'meta.db intact');
      } finally {
        db.close();
      }
    };
    const listed = async () => (await rt().listPodSandbox({})).items.map((p): [string, PodSandboxState] => [p.id, p.state]);
    /** Leaks, except the rows of `id` whose deletes found the disk full (retried once it has room). */
    const leaksBut = (before: Inventory, id: string) =>
      leaks(before, inventory(e)).filter((l) => !(/^(names|sandboxes): left behind/.test(l) && l.includes(id) && !l.includes(',')));

    // A pod made while there is room.
    const good = podConfig('disk-full-meta-good');
    const goodId = (await passing(RUN_STEP, rt().runPodSandbox({ config: good }))).podSandboxId;
    const before = inventory(e);

    // RunPodSandbox whose READY write finds the disk full.
    const bad = podConfig('disk-full-meta-bad');
    const made = await failing(RUN_STEP, rt().runPodSandbox({ config: bad }));
    assert.ok(made.pins.length > before.pins.length && made.ips.length > before.ips.length, 'the paused pod had its netns and IP');
    const failedId = made.sandboxes.find((s) => !before.sandboxes.includes(s))!.split(' ')[0]!;
    // The undo ran: no netns, IP, pin process or dir left. Its record ('creating': listed nowhere)
    // and name stay only while the disk is full (their deletes need room in the WAL too).
    await until(() => leaksBut(before, failedId).length === 0, 'the failed pod undone', 20_000).catch(() => undefined);
    assert.deepEqual(leaksBut(before, failedId), [], 'nothing of the failed pod left');
    dbCheck();
    assert.deepEqual(await listed(), [[goodId, PodSandboxState.SANDBOX_READY]], 'the READY pod listed, the failed one not');
    assert.ok((await rt().version({})).runtimeName, 'berthd keeps serving');
    assert.equal((await rt().podSandboxStatus({ podSandboxId: goodId })).status?.state, PodSandboxState.SANDBOX_READY);
    await assert.rejects(rt().podSandboxStatus({ podSandboxId: failedId }), (err) => (err as { code?: number }).code === 5);

    // Space returns: the same call succeeds at once (its name is free), the failed pod's rows are gone.
    rmSync(filler);
    const again = (await passing(RUN_STEP, rt().runPodSandbox({ config: bad }))).podSandboxId;
    const now = inventory(e);
    assert.ok(![...now.names, ...now.sandboxes].some((l) => l.includes(failedId)), "the failed pod's record and name forgotten");
    assert.deepEqual(new Map(await listed()).get(again), PodSandboxState.SANDBOX_READY);

    // A restart while the disk is full (the last close deleted the -shm and -wal: there is no
    // room to make them again) starts, serves reads and fails writes with storage.no_space. (It
    // holds meta.db exclusively meanwhile: this test does not open it until the next restart.)
    await e.berthd.stop();
    fillFilesystem(filler);
    await e.berthd.restart();
    const afterFull = new Map(await listed());
    assert.equal(afterFull.get(goodId), PodSandboxState.SANDBOX_READY, 'after a restart while full');
    assert.equal(afterFull.get(again), PodSandboxState.SANDBOX_READY, 'after a restart while full');
    await assert.rejects(rt().runPodSandbox({ config: podConfig('disk-full-meta-third') }), assertNoSpace);
    rmSync(filler);
    await e.berthd.stop();
    await e.berthd.restart();
    assert.equal(new Map(await listed()).size, 2, 'a restart with room: both pods');

    // CreateContainer whose record write finds the disk full: no task, runc container, snapshot
    // or dir left; once space returns the same create succeeds and the container runs.
    const cConfig = busyboxConfig(e, 'c', ['true']);
    await e.berthd.cri.image.pullImage({ image: { image: e.busybox.ref } });
    const cBase = inventory(e);
    await failing(CREATE_STEP, rt().createContainer({ podSandboxId: goodId, config: cConfig, sandboxConfig: good }));
    const left = await settledLeaks(e, cBase);
    assert.ok(
      left.every((l) => /^names: left behind k8s\.io\/k8s_c_disk-full-meta-good_\S+ [0-9a-f]{64}$/.test(l)),
      `nothing of the failed container left but its name while the disk is full: ${left.join('; ')}`,
    );
    dbCheck();
    assert.deepEqual((await rt().listContainers({})).containers, [], 'no container listed');
    rmSync(filler);
    const c = (await passing(CREATE_STEP, rt().createContainer({ podSandboxId: goodId, config: cConfig, sandboxConfig: good }))).containerId;
    await rt().startContainer({ containerId: c });
    assert.equal((await waitForState(e, c, ContainerState.CONTAINER_EXITED, 60_000)).exitCode, 0);

    // And a restart with room works.
    await e.berthd.stop();
    await e.berthd.restart();
    const final = new Map(await listed());
    assert.equal(final.get(goodId), PodSandboxState.SANDBOX_READY);
    assert.equal(final.get(again), PodSandboxState.SANDBOX_READY);
    for (const id of [goodId, again]) {
      await rt().stopPodSandbox({ podSandboxId: id });
      await rt().removePodSandbox({ podSandboxId: id });
    }
    await e.berthd.cri.image.removeImage({ image: { image: e.busybox.ref } });
    assert.deepEqual(await settledLeaks(e, base), [], 'nothing left after removing both pods');
  },
);
