/**
 * berthd start: reconcile sandbox and container records with the tasks really alive
 * (TaskManager.init() reconnected to every shim of a bundle on disk; a bundle whose shim is
 * gone comes back as a synthesized stopped task with a reason).
 *
 * - Sandbox still 'creating' (berthd died inside RunPodSandbox): torn down completely.
 * - Sandbox NOTREADY with a `leftover` (a failed RunPodSandbox could not undo a step): the
 *   stop steps run again; the record stays NOTREADY for kubelet's RemovePodSandbox.
 * - Sandbox whose pause is alive stays READY; otherwise NOTREADY, the dead pause task is
 *   deleted, and netns/CNI stay for StopPodSandbox (containerd does the same).
 * - Sandbox without a pause (no shared pid namespace): READY while its pinned namespaces and
 *   its state dir (volatile: gone after a reboot) still exist, NOTREADY otherwise. (The
 *   record is written before the pins and deleted after them, so no pin lacks a record.)
 * - Container with a live task: running. Task stopped with a real exit status: exited with
 *   that status. Task gone (or its shim died): exited 255, reason "Unknown", a message naming
 *   what happened — never "running". Created with its task still created: stays created.
 * - Tasks no record claims (berthd died between task create and record): killed and deleted.
 * - First of all, container removals berthd replied to but had not finished (pending_removals):
 *   task, rootfs snapshot and dirs are removed, then the pending entry.
 * - What a CreateContainer or RunPodSandbox interrupted before its record left (sweepOrphans):
 *   names reserved for an id no record has, rootfs snapshots labelled for a container or pod
 *   that has no record, and containers/<id> dirs under root and state without a record.
 *
 * Runs after watchTaskEvents(): exit events arriving meanwhile are applied idempotently by the
 * event handlers, which take the same per-object locks used here.
 */
import { access, readdir, readFile, rm } from 'node:fs/promises';
import { removeTree } from '../fsat.js';
import { containerRootDir, containerStateDir } from './container/io.js';
import { removeRootfsSnapshot } from './container/userns.js';
import { SnapshotLabel } from '../core/snapshots/labels.js';
import { join } from 'node:path';
import { Annotations } from '../oci/index.js';
import { CRI_NAMESPACE } from './server/instrument.js';
import type { ContainerRecord, SandboxRecord } from '../core/metadata/records.js';
import { isBerthError } from '../errors.js';
import type { RecoveredTask } from '../runtime/index.js';
import { finishPendingRemovals } from './container/deferred-remove.js';
import { containerLockKey, dateToNanos, recordContainerExit } from './container/lifecycle.js';
import { nowNanos, type RuntimeContext } from './server/runtime-context.js';
import { hasPause, isCreating } from './sandbox/common.js';
import { sandboxPaths } from './sandbox/files.js';
import { removeSandbox } from './sandbox/remove.js';
import { sandboxLockKey, stopSandbox } from './sandbox/stop.js';
import { killAndDeletePause } from './sandbox/teardown.js';

const key = (ns: string, id: string): string => `${ns}/${id}`;

function isAlive(t: RecoveredTask | undefined): boolean {
  return t !== undefined && !t.state.reason && (t.state.status === 'running' || t.state.status === 'paused' || t.state.status === 'pausing');
}

async function deleteTaskQuiet(ctx: RuntimeContext, ns: string, id: string): Promise<void> {
  try {
    await ctx.tasks.delete(ns, id);
  } catch (err) {
    if (!isBerthError(err, 'NotFound')) ctx.log.warn('recovery: could not delete a dead task', { id, error: (err as Error).message });
  }
}

async function recoverSandbox(ctx: RuntimeContext, ns: string, sb: SandboxRecord, t: RecoveredTask | undefined): Promise<void> {
  if (isCreating(sb)) {
    ctx.log.info('recovery: removing a pod sandbox whose creation was interrupted', { id: sb.id });
    await removeSandbox(ctx, ns, sb);
    return;
  }
  if (sb.leftover?.length) {
    // A RunPodSandbox whose unwinding failed: finish the undos; the pod stays NOTREADY for kubelet to remove.
    ctx.log.info('recovery: finishing the teardown of a pod sandbox that could not be undone', { id: sb.id, leftover: sb.leftover.join(',') });
    await stopSandbox(ctx, ns, sb);
    return;
  }
  if (!hasPause(sb)) {
    await recoverPauselessSandbox(ctx, ns, sb);
    return;
  }
  if (isAlive(t) && sb.state === 'ready') {
    ctx.sandboxes.update(ns, sb.id, (r) => {
      r.pid = t!.state.pid;
    });
    return;
  }
  // NOTREADY is final: a pause still alive under a NOTREADY record is killed by StopPodSandbox.
  if (isAlive(t)) return;
  if (sb.state === 'ready') {
    const why = t ? (t.state.reason ?? `pause exited with status ${t.state.exitStatus}`) : 'pause task not found';
    ctx.log.warn('recovery: pod sandbox is no longer ready', { id: sb.id, reason: why });
  }
  ctx.sandboxes.update(ns, sb.id, (r) => {
    r.state = 'notready';
    delete r.pid;
    if (t && !t.state.reason) r.exit = { status: t.state.exitStatus, at: t.state.exitedAt?.toISOString() };
  });
  if (t) await deleteTaskQuiet(ctx, ns, sb.id);
}

/** A pod held only by pinned namespaces stays READY while they (and its state dir) exist. */
async function recoverPauselessSandbox(ctx: RuntimeContext, ns: string, sb: SandboxRecord): Promise<void> {
  if (sb.state !== 'ready') return;
  const stateDirThere = await access(sandboxPaths(ctx.settings, sb.id).stateDir).then(
    () => true,
    () => false,
  );
  if (stateDirThere && (await ctx.pods.alive(sb.pins ?? {}))) return;
  ctx.log.warn('recovery: pod sandbox is no longer ready', { id: sb.id, reason: 'its pinned namespaces are gone' });
  ctx.sandboxes.update(ns, sb.id, (r) => {
    r.state = 'notready';
    delete r.pid;
  });
}

function recoverContainer(ctx: RuntimeContext, ns: string, c: ContainerRecord, t: RecoveredTask | undefined): void {
  if (c.state === 'exited') return;
  if (isAlive(t)) {
    ctx.containers.update(ns, c.id, (r) => {
      r.state = 'running';
      r.pid = t!.state.pid;
      r.startedAt ??= nowNanos().toString();
    });
    return;
  }
  if (t && !t.state.reason && t.state.status === 'created') {
    // Never started: only a record that already says created can stay so.
    if (c.state === 'created') return;
  }
  if (t && !t.state.reason && t.state.status === 'stopped') {
    // A real exit the shim saw while berthd was down.
    recordContainerExit(ctx, ns, c.id, { exitStatus: t.state.exitStatus, exitedAt: t.state.exitedAt ?? new Date() });
    return;
  }
  const what = !t ? 'its task no longer exists' : t.state.reason ? `its task is gone (${t.state.reason})` : `its task is in state ${t.state.status}`;
  ctx.containers.update(ns, c.id, (r) => {
    r.state = 'exited';
    r.exitCode = r.exitCode ?? 255;
    r.finishedAt = dateToNanos(t?.state.exitedAt).toString();
    r.reason = 'Unknown';
    r.message = `container was ${c.state} when berthd stopped; after restart ${what}`;
    delete r.pid;
  });
  ctx.events.publish({ kind: 'STOPPED', namespace: ns, containerId: c.id, sandboxId: c.sandboxId, createdAt: nowNanos() });
}

async function isCriTask(ctx: RuntimeContext, t: RecoveredTask): Promise<boolean> {
  try {
    const spec = JSON.parse(await readFile(join(t.state.bundle || join(ctx.settings.state, 'tasks', t.namespace, t.id), 'config.json'), 'utf8')) as {
      annotations?: Record<string, string>;
    };
    return spec.annotations?.[Annotations.ContainerType] !== undefined;
  } catch {
    return false;
  }
}

export async function recover(ctx: RuntimeContext, recovered: RecoveredTask[]): Promise<void> {
  const tasks = new Map(recovered.map((t) => [key(t.namespace, t.id), t]));
  // Removals berthd replied to but did not finish: their task, rootfs and dirs go first.
  const claimed = await finishPendingRemovals(ctx);
  const containers = ctx.containers.all();
  // SandboxStore lists per namespace: every namespace that has a task or a container, plus the CRI's.
  const namespaces = new Set([CRI_NAMESPACE, ...recovered.map((t) => t.namespace), ...containers.map((c) => c.namespace)]);

  for (const { namespace: ns, record: c } of containers) {
    claimed.add(key(ns, c.id));
    try {
      await ctx.locks.run(containerLockKey(ns, c.id), async () => {
        const cur = ctx.containers.get(ns, c.id);
        if (cur) recoverContainer(ctx, ns, cur, tasks.get(key(ns, c.id)));
      });
    } catch (err) {
      ctx.log.warn('recovery: container reconciliation failed', { id: c.id, error: (err as Error).message });
    }
  }

  for (const ns of namespaces) {
    for (const sb of ctx.sandboxes.list(ns)) {
      claimed.add(key(ns, sb.id));
      try {
        await ctx.locks.run(sandboxLockKey(sb.id), async () => {
          const cur = ctx.sandboxes.get(ns, sb.id);
          if (cur) await recoverSandbox(ctx, ns, cur, tasks.get(key(ns, sb.id)));
        });
      } catch (err) {
        ctx.log.warn('recovery: pod sandbox reconciliation failed', { id: sb.id, error: (err as Error).message });
      }
    }
  }

  for (const t of recovered) {
    if (claimed.has(key(t.namespace, t.id))) continue;
    // Only tasks the CRI made (its container-type annotation) are ours to remove.
    if (!(await isCriTask(ctx, t))) continue;
    ctx.log.warn('recovery: removing a task no record claims', { namespace: t.namespace, id: t.id });
    await killAndDeletePause(ctx, t.namespace, t.id).catch((err: unknown) =>
      ctx.log.warn('recovery: orphan task removal failed', { id: t.id, error: (err as Error).message }),
    );
  }

  await sweepOrphans(ctx).catch((err: unknown) => ctx.log.warn('recovery: orphan sweep failed', { error: (err as Error).message }));
}

/** Labels the CRI puts on the rootfs snapshots it prepares (container/create.ts, sandbox/run.ts). */
const SNAPSHOT_OWNER_LABELS = [SnapshotLabel.container, SnapshotLabel.sandbox];

/**
 * Releases and removes what an interrupted create made before its record existed. Each item
 * is logged and skipped on error: a sweep never keeps berthd from starting.
 */
async function sweepOrphans(ctx: RuntimeContext): Promise<void> {
  const containers = ctx.containers.all();
  const containerIds = new Set(containers.map((c) => c.record.id));
  const names = ctx.names.list();
  const namespaces = new Set([CRI_NAMESPACE, ...containers.map((c) => c.namespace), ...names.map((n) => n.namespace)]);
  const sandboxIds = new Set([...namespaces].flatMap((ns) => ctx.sandboxes.list(ns).map((sb) => sb.id)));
  const owned = (id: string) => containerIds.has(id) || sandboxIds.has(id);
  for (const n of names) {
    if (owned(n.holder)) continue;
    ctx.log.warn('recovery: releasing a name reserved by an interrupted create', { namespace: n.namespace, name: n.name, holder: n.holder });
    ctx.names.release(n.namespace, n.name, n.holder);
  }
  for (const info of await ctx.snapshotter.list()) {
    if (info.kind !== 'active') continue;
    const owner = SNAPSHOT_OWNER_LABELS.map((l) => info.labels?.[l]).find((v) => v !== undefined);
    if (owner === undefined || owned(owner)) continue;
    ctx.log.warn('recovery: removing a rootfs snapshot no record claims', { key: info.key, owner });
    await removeRootfsSnapshot(ctx, info.key).catch((err: unknown) =>
      ctx.log.warn('recovery: orphan snapshot removal failed', { key: info.key, error: (err as Error).message }),
    );
  }
  for (const [dir, remove] of [
    [containerStateDir(ctx, ''), (p: string) => rm(p, { recursive: true, force: true })],
    [containerRootDir(ctx, ''), removeTree],
  ] as const) {
    const entries = await readdir(dir).catch(() => [] as string[]);
    for (const id of entries) {
      if (containerIds.has(id) || !/^[0-9a-f]{64}$/.test(id)) continue;
      ctx.log.warn('recovery: removing the dir of a container that has no record', { path: join(dir, id) });
      await remove(join(dir, id)).catch((err: unknown) =>
        ctx.log.warn('recovery: orphan dir removal failed', { path: join(dir, id), error: (err as Error).message }),
      );
    }
  }
}
