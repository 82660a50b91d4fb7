/**
 * What a RuntimeContext remembers between calls is its own: two contexts in one process (as
 * these unit tests build) share no forwarder, removal, cache, reference count or rate. And no
 * module of src/ keeps mutable state at module level unless it says why it is process-wide.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setImmediate as tick } from 'node:timers/promises';
import { finishRemovalLater, removalsSettled } from '../../src/cri/container/deferred-remove.js';
import { containerStateDir } from '../../src/cri/container/io.js';
import { containerLockKey } from '../../src/cri/container/lifecycle.js';
import { REMAP_OF_LABEL, remapName, Remapper, type Snapshotter, type SnapshotInfo } from '../../src/core/snapshots/index.js';
import { makeFifo } from '../../src/runtime/index.js';
import { newTestContext } from '../helpers/fakes/context.js';

const NS = 'k8s.io';

test('a container removal running in one context does not hold up RemovePodSandbox in another', async (t) => {
  const a = await newTestContext(t);
  const b = await newTestContext(t);
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  // Someone holds the container's lock in a: its deferred removal queues behind it.
  const holder = a.ctx.locks.run(containerLockKey(NS, 'c1'), () => held);
  finishRemovalLater(a.ctx, NS, { id: 'c1', sandboxId: 'pod1', snapshotKey: 'c1' });

  let aSettled = false;
  let bSettled = false;
  void removalsSettled(a.ctx, NS, 'pod1').then(() => (aSettled = true));
  void removalsSettled(b.ctx, NS, 'pod1').then(() => (bSettled = true));
  for (let i = 0; i < 5; i++) await tick();
  assert.equal(bSettled, true, 'b has no removal running: it waits for nothing');
  assert.equal(aSettled, false, "a's removal is still queued behind the lock");
  release();
  await holder;
  await removalsSettled(a.ctx, NS);
  assert.equal(aSettled, true);
});

test("a log forwarder started in one context is not another's", async (t) => {
  const a = await newTestContext(t);
  const b = await newTestContext(t);
  const dir = containerStateDir(a.ctx, 'c1');
  await mkdir(dir, { recursive: true });
  await makeFifo(join(dir, 'stdout'));
  await makeFifo(join(dir, 'stderr'));
  const log = join(a.dir, 'c1.log');
  await a.ctx.logForwarders.start(a.ctx, NS, 'c1', log);
  t.after(() => a.ctx.logForwarders.finish(NS, 'c1'));
  assert.equal(a.ctx.logForwarders.has(NS, 'c1'), true);
  assert.equal(b.ctx.logForwarders.has(NS, 'c1'), false);
  assert.equal(await b.ctx.logForwarders.reopen(NS, 'c1'), false, 'b forwards no log for c1: ReopenContainerLog goes to the shim');
  await b.ctx.logForwarders.finish(NS, 'c1');
  assert.equal(a.ctx.logForwarders.has(NS, 'c1'), true, "finishing in b leaves a's forwarder running");
  assert.equal(await a.ctx.logForwarders.reopen(NS, 'c1'), true);
});

test('the user-db cache, image volume references and CPU rates are per context', async (t) => {
  const a = await newTestContext(t);
  const b = await newTestContext(t);
  a.ctx.userDbs.set('sha256:chain', { passwd: [], group: [] } as never);
  assert.ok(a.ctx.userDbs.get('sha256:chain'));
  assert.equal(b.ctx.userDbs.get('sha256:chain'), undefined);

  a.ctx.imageVolumes.pin('/state/imgvol/pod/img');
  assert.equal(a.ctx.imageVolumes.has('/state/imgvol/pod/img'), true);
  assert.equal(b.ctx.imageVolumes.has('/state/imgvol/pod/img'), false, "a's create in flight is not one of b's");

  const sample = (ts: bigint, cpu: bigint) => ({
    timestamp: ts,
    cpuNanos: cpu,
    memUsage: 0n,
    workingSet: 0n,
    rss: 0n,
    pageFaults: 0n,
    majorFaults: 0n,
    limit: undefined,
    pids: 0n,
  });
  assert.equal(a.ctx.cpuRates.rate('c/k8s.io/c1', sample(1_000_000_000n, 0n)), undefined);
  assert.equal(a.ctx.cpuRates.rate('c/k8s.io/c1', sample(2_000_000_000n, 500_000_000n)), 500_000_000n);
  assert.equal(b.ctx.cpuRates.rate('c/k8s.io/c1', sample(2_000_000_000n, 500_000_000n)), undefined, "b's first sample has no rate");

  a.ctx.idmapRoots.add('/state/idmap');
  assert.equal(b.ctx.idmapRoots.has('/state/idmap'), false);
});

test("a remapped parent being built for one snapshotter's container is not busy for another's", async () => {
  const plan = { uidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }], gidMappings: [{ containerID: 0, hostID: 100000, size: 65536 }] };
  const name = remapName('sha256:img', plan);
  let unblock!: () => void;
  const blocked = new Promise<void>((r) => (unblock = r));
  const removed: string[][] = [[], []];
  const stub = (i: number, block: boolean): Snapshotter =>
    ({
      async stat(key: string): Promise<SnapshotInfo> {
        if (block) await blocked;
        return { key, kind: 'committed', created: new Date(), updated: new Date(), labels: {} };
      },
      async prepare() {
        return [];
      },
      async applyTarget(key: string) {
        return { mode: 'native', dir: `/x/${key}`, lowers: [] };
      },
      async list(): Promise<SnapshotInfo[]> {
        return [{ key: name, kind: 'committed', created: new Date(), updated: new Date(), labels: { [REMAP_OF_LABEL]: 'sha256:img' } }];
      },
      async remove(key: string) {
        removed[i]!.push(key);
      },
    }) as unknown as Snapshotter;
  const ra = new Remapper(stub(0, true));
  const rb = new Remapper(stub(1, false));
  const preparing = ra.prepare('c1', 'sha256:img', plan, {}, '/tmp');
  await tick();
  assert.equal(ra.busy(name), true, "a's prepare holds its remapped parent");
  assert.equal(rb.busy(name), false);
  assert.deepEqual(await ra.prune(), [], 'a keeps the parent its prepare uses');
  assert.deepEqual(await rb.prune(), [name], "b's snapshotter has no prepare in flight: its unused parent goes");
  unblock();
  await preparing;
  assert.equal(ra.busy(name), false);
});

/** src/ files, recursively, without the generated api/. */
async function sources(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (p.endsWith('/src/api')) continue;
      out.push(...(await sources(p)));
    } else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

test('module-level mutable state exists only where a comment says why it is process-wide', async () => {
  const root = new URL('../../../src', import.meta.url).pathname;
  const offenders: string[] = [];
  for (const file of await sources(root)) {
    const lines = (await readFile(file, 'utf8')).split('\n');
    lines.forEach((line, i) => {
      // `let` at the top level, or an empty Map/Set/WeakMap (a table built with contents is a constant).
      const mutable = /^(export )?let /.test(line) || /^(export )?const \w+(: [^=]+)? = new (Map|Set|WeakMap)(<[^(]*>)?\(\);/.test(line);
      if (!mutable) return;
      const before = lines.slice(Math.max(0, i - 3), i).join('\n');
      if (!/Process-wide:/.test(before)) offenders.push(`${file.slice(root.length + 1)}:${i + 1}: ${line.trim()}`);
    });
  }
  assert.deepEqual(offenders, [], 'move the state into the object it belongs to (RuntimeContext, snapshotter, …) or say why it is per process');
});
