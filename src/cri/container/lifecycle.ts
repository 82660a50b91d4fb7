/**
 * Container lifecycle steps shared by several handlers and by the task event watcher:
 * recording an exit (idempotent: the same exit arrives through Wait and through the event),
 * stopping (stop signal, SIGKILL after the timeout) and removing everything a container owns.
 * StopPodSandbox / RemovePodSandbox use stopContainerTask / removeContainerFully.
 *
 * Locking: the exported entry points take the container's KeyedLock; the *Locked variants
 * expect the caller to hold it (KeyedLock is not re-entrant).
 */
import { constants as osConstants } from 'node:os';
import type { ContainerRecord } from '../../core/metadata/records.js';
import { isBerthError } from '../../errors.js';
import type { ExitStatus } from '../../runtime/index.js';
import { ContainerConfigSchema } from '../../api/cri/runtime/v1/api_pb.js';
import { stopSignal } from '../../oci/index.js';
import { finishRemovalLater } from './deferred-remove.js';
import { finishLogForwarder } from './io.js';
import { imageVolumesOf, releaseImageVolumes } from './image-volume.js';
import { decodeMessage, nowNanos, type RuntimeContext } from '../server/runtime-context.js';
import { sleep, type Clock } from '../server/ports.js';

const { SIGKILL } = osConstants.signals;
const SIGTERM = 15;

/** Lock key of a container (namespaced: ids are only unique per namespace). */
export function containerLockKey(ns: string, id: string): string {
  return `container/${ns}/${id}`;
}

/** containerd's reasons: OOMKilled wins, then Completed for 0, Error otherwise. */
export function exitReason(exitCode: number, oomKilled: boolean): string {
  if (oomKilled) return 'OOMKilled';
  return exitCode === 0 ? 'Completed' : 'Error';
}

export function dateToNanos(d: Date | undefined): bigint {
  if (!d || Number.isNaN(d.getTime()) || d.getTime() <= 0) return nowNanos();
  return BigInt(d.getTime()) * 1_000_000n;
}

/**
 * Records the exit of a container's init process. Returns true when this call changed the
 * record (and published STOPPED); false when it was already exited or is gone.
 */
export function recordContainerExit(ctx: RuntimeContext, ns: string, id: string, exit: ExitStatus): boolean {
  const cur = ctx.containers.get(ns, id);
  if (!cur || cur.state === 'exited') return false;
  const r = ctx.containers.update(ns, id, (c) => {
    c.state = 'exited';
    c.exitCode = exit.exitStatus;
    const finished = dateToNanos(exit.exitedAt);
    // exitedAt has millisecond precision: never report a finish before the start.
    c.finishedAt = (c.startedAt && BigInt(c.startedAt) > finished ? BigInt(c.startedAt) : finished).toString();
    c.reason = exitReason(exit.exitStatus, c.extra.oomKilled === true);
    if (exit.reason) c.message = exit.reason;
    delete c.pid;
  });
  ctx.events.publish({ kind: 'STOPPED', namespace: ns, containerId: id, sandboxId: r.sandboxId, createdAt: nowNanos() });
  void finishLogForwarder(ctx, ns, id);
  return true;
}

/** recordContainerExit once a log berthd forwards is complete (exited ⇒ the log is whole). */
export async function recordContainerExitFlushed(ctx: RuntimeContext, ns: string, id: string, exit: ExitStatus): Promise<boolean> {
  const cur = ctx.containers.get(ns, id);
  if (!cur || cur.state === 'exited') return false;
  await finishLogForwarder(ctx, ns, id);
  return recordContainerExit(ctx, ns, id, exit);
}

/** The signal that stops this container (config stop_signal, image StopSignal, SIGTERM). */
function stopSignalOf(c: ContainerRecord): number {
  try {
    const cfg = decodeMessage(ContainerConfigSchema, c.config);
    const image = (c.extra.imageConfig ?? {}) as { StopSignal?: string };
    return stopSignal(cfg.stopSignal, image);
  } catch {
    return SIGTERM;
  }
}

/** Waits for the init process to exit, at most `ms` (undefined: no limit); undefined on timeout. */
async function waitExit(clock: Clock, ms: number | undefined, waiting: Promise<ExitStatus>): Promise<ExitStatus | undefined> {
  if (ms === undefined) return waiting;
  const timer = sleep(clock, ms);
  try {
    return await Promise.race([waiting, timer.done.then(() => undefined)]);
  } finally {
    timer.cancel();
  }
}

/** Kill that tolerates a process that already exited (the shim says NotFound / FailedPrecondition). */
async function killQuiet(ctx: RuntimeContext, ns: string, id: string, signal: number): Promise<void> {
  try {
    await ctx.tasks.kill(ns, id, signal);
  } catch (err) {
    if (isBerthError(err, 'NotFound') || isBerthError(err, 'FailedPrecondition')) return;
    throw err;
  }
}

/** Stop with the caller holding the container lock. */
export async function stopContainerLocked(ctx: RuntimeContext, ns: string, id: string, timeoutSec: number): Promise<void> {
  const c = ctx.containers.get(ns, id);
  // Created containers were never started: nothing to stop (RemoveContainer deletes the task).
  if (!c || (c.state !== 'running' && c.state !== 'unknown')) return;
  // Wait before signalling so the exit cannot be missed; a rejected wait (task unknown or
  // gone) counts as exited with an unknown status.
  const waiting = ctx.tasks.wait(ns, id).catch((err: unknown): ExitStatus => {
    ctx.log.debug('wait for container exit failed', { id, error: err });
    return { exitStatus: 255, exitedAt: new Date(), reason: 'task gone' };
  });
  let exit: ExitStatus | undefined;
  if (timeoutSec > 0) {
    await killQuiet(ctx, ns, id, stopSignalOf(c));
    exit = await waitExit(ctx.clock, timeoutSec * 1000, waiting);
  }
  if (!exit) {
    await killQuiet(ctx, ns, id, SIGKILL);
    exit = await waitExit(ctx.clock, undefined, waiting);
  }
  await recordContainerExitFlushed(ctx, ns, id, exit!);
}

/** Stop a container: its stop signal, then SIGKILL after timeoutSec; idempotent. */
export async function stopContainerTask(ctx: RuntimeContext, ns: string, c: ContainerRecord, timeoutSec: number): Promise<void> {
  await ctx.locks.run(containerLockKey(ns, c.id), () => stopContainerLocked(ctx, ns, c.id, timeoutSec));
}

/**
 * Remove with the caller holding the container lock: a running container is killed and its
 * exit recorded, then the record is retired (deleted with its name, a pending removal kept, one
 * transaction) and the task, rootfs and dirs go after the caller's reply (deferred-remove.ts).
 */
export async function removeContainerLocked(ctx: RuntimeContext, ns: string, id: string): Promise<void> {
  const c = ctx.containers.get(ns, id);
  if (!c) return;
  // A running container is killed right away (containerd: stop with timeout 0).
  await stopContainerLocked(ctx, ns, id, 0);
  ctx.containers.retire(ns, c);
  // Its image volume views go with the last container of the pod that uses them (the count
  // comes from the records, which no longer hold this one; the sweep after recovery catches a
  // release a crash cut short).
  const views = imageVolumesOf(c);
  if (views.length > 0) await releaseImageVolumes(ctx, ns, c.sandboxId, views);
  ctx.events.publish({ kind: 'DELETED', namespace: ns, containerId: id, sandboxId: c.sandboxId, createdAt: nowNanos() });
  finishRemovalLater(ctx, ns, { id, sandboxId: c.sandboxId, snapshotKey: c.snapshotKey });
}

/** Remove a container (stopping it first): record and name now, task, rootfs snapshot and dirs right after; idempotent. Logs stay. */
export async function removeContainerFully(ctx: RuntimeContext, ns: string, c: ContainerRecord): Promise<void> {
  await ctx.locks.run(containerLockKey(ns, c.id), () => removeContainerLocked(ctx, ns, c.id));
}
