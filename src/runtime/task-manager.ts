/**
 * TaskManager: berthd's side of tasks (containerd's core/runtime/v2 semantics).
 *
 * - Bundles under <state>/tasks/<ns>/<id> (bundle.ts).
 * - Shim processes (start, connect, load after a restart, start again, retire): shims.ts.
 *   berth-shim: one long-lived shim per namespace (conmon monitors each container, so the shim
 *   holds nothing a crash could lose). Other shims (containerd-shim-runc-v2): one per
 *   (runtime, namespace, pod), as containerd groups them.
 * - Events from shims arrive on berthd's Events/Forward socket (events.ts) and are re-emitted.
 * - A berth-shim that dies is started again (it takes its containers over from disk and
 *   reports the exits it finds); its tasks stay as they are. Any other shim that dies has its
 *   tasks marked exited 255 with reason "shim died" and `<shim> delete` run on their bundles.
 * - init() reconnects to the shims of every bundle on disk after a restart (starting a
 *   berth-shim again if none answers).
 * Every RPC carries a deadline except Wait, which instead ends when the shim dies.
 */
import { EventEmitter } from 'node:events';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { AnySchema, timestampDate, type Any } from '@bufbuild/protobuf/wkt';
import { errors, hasCode, isBerthError } from '../errors.js';
import { log as rootLog, type Logger } from '../log.js';
import { Cleanup } from '../cleanup.js';
import { ensurePrivateDir } from '../ttrpc/index.js';
import { Status } from '../api/containerd/types/task/task_pb.js';
import type { StateResponse } from '../api/containerd/runtime/v2/task/shim_pb.js';
import { CheckpointOptionsSchema, ProcessDetailsSchema } from '../api/containerd/runc/options/oci_pb.js';
import { toBinary, fromBinary, type MessageInitShape } from '@bufbuild/protobuf';
import { CGROUP_FILE, EXIT_REASON_FILE, SANDBOX_ID_ANNOTATION } from '../shim-protocol.js';
import { cgroupExists, parseProcCgroup, usageSummary, type CgroupLocation } from '../cgroup-stats.js';
import { MetricsSchema as V1MetricsSchema } from '../api/cgroups/stats/v1/metrics_pb.js';
import { MetricsSchema as V2MetricsSchema } from '../api/cgroups/cgroup2/stats/metrics_pb.js';
import { readFileSync } from 'node:fs';
import { bundlePaths, createBundle, listBundles, readTaskRecord, removeBundle, type BundlePaths } from './bundle.js';
import { EventReceiver } from './events.js';
import type { ShimHandle } from './shim.js';
import { ShimSet } from './shims.js';
import { runtimeOptions } from './shim-binary.js';
import { decodeMetrics, type TaskMetrics } from './stats.js';
import {
  type CreateTaskOptions,
  type ExecOptions,
  type ExitStatus,
  type ProcessInfo,
  type RecoveredTask,
  type RuntimeHandler,
  type TaskEvents,
  type TaskState,
  type TaskStatus,
} from './types.js';

export interface TaskManagerOptions {
  /** Volatile state (bundles, sockets): e.g. /run/berth. */
  stateDir: string;
  /** Persistent root (work dirs): e.g. /var/lib/berth. */
  rootDir: string;
  /** Runtime handlers by name. */
  handlers: Record<string, RuntimeHandler>;
  /** berthd's main address, passed to shims as -address / GRPC_ADDRESS. */
  address?: string;
  publishBinary?: string;
  /** Extra environment for shims (e.g. BERTH_RUNC_ROOT). */
  shimEnv?: Record<string, string>;
  /** Deadline of ordinary RPCs to shims. */
  rpcTimeoutMs?: number;
  /** Deadline of Create/Start/Delete/Exec (runc work, mounts). */
  slowRpcTimeoutMs?: number;
  /** Shut a per-pod shim (not berth-shim) down once its last task is deleted (default true). */
  shutdownIdleShims?: boolean;
  debugShims?: boolean;
  logger?: Logger;
}

interface TaskEntry {
  namespace: string;
  id: string;
  runtime: string;
  paths: BundlePaths;
  shim: ShimHandle | undefined;
  /** Set when berthd synthesized the exit (shim gone). */
  dead: ExitStatus | undefined;
  /** `<shim> delete` already ran for this bundle. */
  cleaned: boolean;
}

const SHIM_DIED = 'shim died';
const statusName: Record<number, TaskStatus> = {
  [Status.UNKNOWN]: 'unknown',
  [Status.CREATED]: 'created',
  [Status.RUNNING]: 'running',
  [Status.STOPPED]: 'stopped',
  [Status.PAUSED]: 'paused',
  [Status.PAUSING]: 'pausing',
};

function taskKey(ns: string, id: string): string {
  return `${ns}/${id}`;
}

function jsonAny(typeUrl: string, v: unknown): Any {
  return create(AnySchema, { typeUrl, value: Buffer.from(JSON.stringify(v)) });
}

export const PROCESS_TYPE_URL = 'types.containerd.io/opencontainers/runtime-spec/1/Process';
export const RESOURCES_TYPE_URL = 'types.containerd.io/opencontainers/runtime-spec/1/LinuxResources';

export class TaskManager extends EventEmitter<TaskEvents> {
  private readonly tasks = new Map<string, TaskEntry>();
  private readonly shims: ShimSet;
  private readonly receiver: EventReceiver;
  private readonly log: Logger;
  private closing = false;
  readonly eventsSocket: string;
  readonly shimStateDir: string;
  private readonly rpcTimeoutMs: number;
  private readonly slowTimeoutMs: number;

  constructor(private readonly o: TaskManagerOptions) {
    super();
    this.log = (o.logger ?? rootLog).child({ component: 'runtime' });
    this.eventsSocket = join(o.stateDir, 'ev', 'events.sock');
    this.shimStateDir = join(o.stateDir, 's');
    this.rpcTimeoutMs = o.rpcTimeoutMs ?? 10_000;
    this.slowTimeoutMs = o.slowRpcTimeoutMs ?? 60_000;
    this.receiver = new EventReceiver(this.eventsSocket, this.log);
    this.shims = new ShimSet({
      handlers: o.handlers,
      shimStateDir: this.shimStateDir,
      address: o.address ?? this.eventsSocket,
      eventsSocket: this.eventsSocket,
      publishBinary: o.publishBinary,
      debugShims: o.debugShims,
      shimEnv: o.shimEnv,
      rpcTimeoutMs: this.rpcTimeoutMs,
      slowTimeoutMs: this.slowTimeoutMs,
      shutdownIdleShims: o.shutdownIdleShims,
      log: this.log,
      onDead: (sh) => this.shimDead(sh),
      onRestarted: (sh) => this.shimRestarted(sh),
    });
    for (const name of ['oom', 'create', 'start', 'delete', 'execAdded', 'execStarted', 'paused', 'resumed', 'checkpointed'] as const) {
      (this.receiver.on as (n: string, l: (e: unknown) => void) => unknown).call(this.receiver, name, (e) => {
        (this.emit as (n: string, e: unknown) => boolean)(name, e);
      });
    }
    this.receiver.on('exit', (e) => {
      const reason = e.id === e.containerId || e.id === '' ? this.monitorReason(e.namespace, e.containerId) : undefined;
      this.emit('exit', reason ? { ...e, reason } : e);
    });
  }

  // ---------------------------------------------------------------- startup / shutdown

  /** Listens for events, reconnects to the shims of bundles on disk. */
  async init(): Promise<RecoveredTask[]> {
    await mkdir(join(this.o.stateDir, 'tasks'), { recursive: true, mode: 0o711 });
    await mkdir(join(this.o.rootDir, 'tasks'), { recursive: true, mode: 0o711 });
    await ensurePrivateDir(this.shimStateDir);
    await this.receiver.listen();
    const recovered: RecoveredTask[] = [];
    for (const [ns, id] of await listBundles(this.o.stateDir)) {
      try {
        const r = await this.recover(ns, id);
        if (r) recovered.push(r);
      } catch (err) {
        this.log.warn('could not recover task', { ns, id, err });
      }
    }
    return recovered;
  }

  /**
   * Detaches from shims (containers keep running) and stops serving events. A berth-shim that
   * hosts nothing is shut down; one that hosts containers keeps running.
   */
  async close(): Promise<void> {
    this.closing = true;
    await this.shims.close();
    await this.receiver.close();
  }

  private async recover(ns: string, id: string): Promise<RecoveredTask | undefined> {
    const paths = bundlePaths(this.o.stateDir, this.o.rootDir, ns, id);
    const rec = await readTaskRecord(paths.dir);
    let address = '';
    try {
      address = (await readFile(join(paths.dir, 'address'), 'utf8')).trim();
    } catch {
      address = '';
    }
    const handler = rec ? this.o.handlers[rec.runtime] : undefined;
    if (!rec || !address || !handler) {
      // A create that never reached its shim (berthd died half-way), or an unknown runtime.
      this.log.info('removing orphan bundle', { ns, id, reason: !rec ? 'no task record' : !address ? 'no shim address' : `unknown runtime ${rec.runtime}` });
      if (handler && rec) await this.runShimDelete(handler, ns, id, paths).catch(() => undefined);
      await removeBundle(paths);
      return undefined;
    }
    const entry: TaskEntry = { namespace: ns, id, runtime: rec.runtime, paths, shim: undefined, dead: undefined, cleaned: false };
    this.tasks.set(taskKey(ns, id), entry);
    const shim = await this.shims.load(rec.runtime, handler, ns, id, paths.dir, rec.groupKey, address);
    if (!shim) {
      await this.markDead(entry, `${SHIM_DIED} while berthd was down`);
      return { namespace: ns, id, runtime: rec.runtime, state: this.deadState(entry) };
    }
    entry.shim = shim;
    try {
      const st = toTaskState(await shim.task.state({ id }, { timeoutMs: this.rpcTimeoutMs }));
      if (st.status === 'stopped') st.reason = this.monitorReason(ns, id);
      return { namespace: ns, id, runtime: rec.runtime, state: st };
    } catch (err) {
      if (!isBerthError(err, 'NotFound')) throw err;
      await this.shims.release(shim, id);
      entry.shim = undefined;
      await this.markDead(entry, 'task unknown to its shim');
      return { namespace: ns, id, runtime: rec.runtime, state: this.deadState(entry) };
    }
  }

  // ---------------------------------------------------------------- shims

  /** Why berth-shim recorded an exit itself (the container's monitor died), if it did. */
  private monitorReason(ns: string, id: string): string | undefined {
    // By path, not by entry: during init a new shim reports exits before every task is loaded.
    const { dir } = bundlePaths(this.o.stateDir, this.o.rootDir, ns, id);
    try {
      return readFileSync(join(dir, EXIT_REASON_FILE), 'utf8').trim() || undefined;
    } catch {
      return undefined;
    }
  }

  /** A shim is gone for good: each of its tasks gets a synthesized exit. */
  private async shimDead(sh: ShimHandle): Promise<void> {
    for (const id of [...sh.tasks]) {
      const e = this.tasks.get(taskKey(sh.id.namespace, id));
      if (e && e.shim === sh)
        await this.markDead(e, SHIM_DIED, !sh.id.restartable).catch((err: unknown) => this.log.warn('cleanup after dead shim failed', { id, err }));
    }
  }

  /**
   * A berth-shim was started again: exits that happened meanwhile arrive as events from the
   * new shim, and are also read from its State answers here (an event can be lost; records
   * are updated idempotently).
   */
  private async shimRestarted(sh: ShimHandle): Promise<void> {
    for (const id of [...sh.tasks]) {
      const e = this.tasks.get(taskKey(sh.id.namespace, id));
      if (!e || e.shim !== sh) continue;
      try {
        const st = toTaskState(await sh.task.state({ id }, { timeoutMs: this.rpcTimeoutMs }));
        if (st.status !== 'stopped') continue;
        const reason = this.monitorReason(e.namespace, id);
        this.emit('exit', {
          namespace: e.namespace,
          containerId: id,
          id,
          pid: st.pid,
          exitStatus: st.exitStatus,
          exitedAt: st.exitedAt ?? new Date(),
          ...(reason ? { reason } : {}),
        });
      } catch (err) {
        if (isBerthError(err, 'NotFound')) await this.markDead(e, 'task unknown to its shim').catch(() => undefined);
        else this.log.warn('state after shim restart failed', { id, err });
      }
    }
  }

  /** Records a synthesized exit, emits it, runs `<shim> delete` on the bundle. */
  /**
   * `cleanup` false: a berth-shim that could not be started again — its containers may still
   * run under conmon, so nothing is deleted now (Delete, or the next berthd's start, does it).
   */
  private async markDead(e: TaskEntry, reason: string, cleanup = true): Promise<void> {
    if (e.dead) return;
    const shim = e.shim;
    e.dead = { exitStatus: 255, exitedAt: new Date(), reason };
    e.shim = undefined;
    if (shim) await this.shims.release(shim, e.id).catch(() => undefined);
    this.emit('exit', { namespace: e.namespace, containerId: e.id, id: '', pid: 0, exitStatus: 255, exitedAt: e.dead.exitedAt, reason });
    const h = this.o.handlers[e.runtime];
    if (h && !e.cleaned && cleanup) {
      try {
        await this.runShimDelete(h, e.namespace, e.id, e.paths);
        e.cleaned = true;
      } catch (err) {
        this.log.warn('shim delete failed', { ns: e.namespace, id: e.id, err });
      }
    }
  }

  private async runShimDelete(h: RuntimeHandler, ns: string, id: string, paths: BundlePaths): Promise<void> {
    await this.shims.deleteBundle(h, ns, id, paths.dir);
  }

  // ---------------------------------------------------------------- task API

  private entry(ns: string, id: string): TaskEntry {
    const e = this.tasks.get(taskKey(ns, id));
    if (!e) throw errors.notFound('runtime.task_not_found', `task ${id} not found in namespace ${ns}`);
    return e;
  }

  /** The live shim of a task; a task whose shim died answers FailedPrecondition. */
  private async live(ns: string, id: string): Promise<{ e: TaskEntry; s: ShimHandle }> {
    const e = this.entry(ns, id);
    if (e.shim?.verdict) await e.shim.verdict;
    if (e.dead || !e.shim) throw errors.failedPrecondition('runtime.task_exited', `task ${id} has exited: ${e.dead?.reason ?? 'no shim'}`);
    return { e, s: e.shim };
  }

  /** Runs one RPC; a lost connection waits for the reconnect decision and retries once. */
  private async rpc<T>(ns: string, id: string, fn: (s: ShimHandle) => Promise<T>): Promise<T> {
    const { s } = await this.live(ns, id);
    try {
      return await fn(s);
    } catch (err) {
      if (!isBerthError(err, 'Unavailable')) throw err;
      // Give the close handler its turn, then follow its verdict.
      await new Promise((r) => setImmediate(r));
      if (!s.verdict || !(await s.verdict)) throw err;
      return fn(s);
    }
  }

  async create(o: CreateTaskOptions): Promise<{ pid: number }> {
    const h = this.o.handlers[o.runtime];
    if (!h) throw errors.notFound('runtime.handler_not_found', `no runtime handler named ${JSON.stringify(o.runtime)}`);
    const paths = bundlePaths(this.o.stateDir, this.o.rootDir, o.namespace, o.id);
    const k = taskKey(o.namespace, o.id);
    if (this.tasks.has(k)) throw errors.alreadyExists('runtime.task_exists', `task ${o.id} already exists in namespace ${o.namespace}`);
    const annotations = (o.spec.annotations ?? {}) as Record<string, string>;
    const group = o.groupKey ?? annotations[SANDBOX_ID_ANNOTATION] ?? o.id;
    const entry: TaskEntry = { namespace: o.namespace, id: o.id, runtime: o.runtime, paths, shim: undefined, dead: undefined, cleaned: false };
    this.tasks.set(k, entry);
    // Undone in reverse: the container in the shim, shim membership (and the shim if it hosts
    // nothing), the bundle. The bundle is bookkeeping: it stays when the shim could not confirm
    // that nothing of the container is left, for recovery to finish (a bundle with no live task).
    const cleanup = new Cleanup(this.log);
    let failure: unknown;
    // Set when a restarting shim's successor will take the container over from the bundle.
    let keepBundle = false;
    cleanup.pushBookkeeping('remove bundle', async () => {
      if (keepBundle) return;
      if (hasCode(failure, 'runtime.task_exists')) return;
      await removeBundle(paths).catch((e: unknown) => this.log.warn('bundle cleanup failed', { id: o.id, err: e }));
    });
    try {
      await createBundle(paths, o.spec, { runtime: o.runtime, groupKey: group, createdAt: new Date().toISOString() });
      const shim = await this.shims.forTask(o.runtime, h, o.namespace, o.id, paths.dir, group);
      entry.shim = shim;
      cleanup.push('release shim', () => this.shims.release(shim, o.id).catch(() => undefined));
      // Once Create is sent the shim may make the container even though we see an error (it
      // died and its successor took the container over; our deadline passed while runc still
      // worked): delete it there.
      cleanup.push('delete the half-made task', async () => {
        if (hasCode(failure, 'shim.container_exists')) return;
        await new Promise((r) => setImmediate(r));
        if (shim.verdict) await shim.verdict;
        if (shim.state === 'ready') {
          try {
            await shim.task.delete({ id: o.id, execId: '' }, { timeoutMs: this.slowTimeoutMs });
          } catch (e) {
            if (isBerthError(e, 'NotFound')) return;
            this.log.warn('could not delete a half-made task; its bundle stays for recovery', { id: o.id, err: e });
            throw e;
          }
        } else if (shim.id.restartable) {
          keepBundle = true;
        }
      });
      const r = await shim.task.create(
        {
          id: o.id,
          bundle: paths.dir,
          rootfs: (o.rootfs ?? []).map((m) => ({ type: m.type, source: m.source, target: m.target ?? '', options: m.options })),
          terminal: o.terminal ?? false,
          stdin: o.stdin ?? '',
          stdout: o.stdout ?? '',
          stderr: o.stderr ?? '',
          options: runtimeOptions(h),
        },
        { timeoutMs: this.slowTimeoutMs },
      );
      cleanup.commit();
      if (!shim.pid) {
        // Not every shim writes shim.pid before `start` returns; Connect names it.
        shim.pid = (await shim.task.connect({ id: o.id }).catch(() => undefined))?.shimPid || undefined;
        if (shim.pid) await writeFile(join(paths.dir, 'shim.pid'), String(shim.pid)).catch(() => undefined);
      }
      return { pid: r.pid };
    } catch (err) {
      failure = err;
      this.tasks.delete(k);
      await cleanup.unwind();
      throw err;
    }
  }

  async start(ns: string, id: string, execId = ''): Promise<number> {
    if (execId) {
      // Never retried: an exec whose Start was cut off may already run (conmon goes on when
      // the shim dies); a second Start would run the command twice.
      const { s } = await this.live(ns, id);
      return (await s.task.start({ id, execId }, { timeoutMs: this.slowTimeoutMs })).pid;
    }
    // A shim that died during the start (kill -9 of berth-shim while `runc start` ran) may have
    // started the container anyway: its orphaned `runc start` goes on. The retry on the
    // successor then finds the container running; that start happened, it is not a failure.
    let retry = false;
    const r = await this.rpc(ns, id, async (s) => {
      const again = retry;
      retry = true;
      try {
        return await s.task.start({ id, execId }, { timeoutMs: this.slowTimeoutMs });
      } catch (err) {
        if (!again || !isBerthError(err, 'FailedPrecondition')) throw err;
        const raw = await s.task.state({ id }, { timeoutMs: this.rpcTimeoutMs }).catch(() => undefined);
        const st = raw && toTaskState(raw);
        if (st && (st.status === 'running' || st.status === 'paused') && st.pid > 0) {
          this.log.warn('start retried after the shim died: the container was started meanwhile', { id, pid: st.pid });
          return { pid: st.pid };
        }
        throw err;
      }
    });
    return r.pid;
  }

  /** Kill; on a task whose shim died this is a no-op (it is already stopped). */
  async kill(ns: string, id: string, signal: number, opts: { all?: boolean; execId?: string } = {}): Promise<void> {
    const e = this.entry(ns, id);
    if (e.shim?.verdict) await e.shim.verdict;
    if (e.dead) return;
    await this.rpc(ns, id, (s) => s.task.kill({ id, execId: opts.execId ?? '', signal, all: opts.all ?? false }));
  }

  /**
   * Waits for a process to exit. Has no deadline, but resolves with exit 255 and a reason when
   * the shim dies, and rejects when the manager is closed.
   */
  async wait(ns: string, id: string, execId = ''): Promise<ExitStatus> {
    for (;;) {
      const e = this.entry(ns, id);
      if (e.shim?.verdict) await e.shim.verdict;
      if (e.dead) return { ...e.dead };
      const s = e.shim;
      if (!s) throw errors.failedPrecondition('runtime.task_exited', `task ${id} has no shim`);
      try {
        const r = await s.task.wait({ id, execId }, { timeoutMs: 0 });
        return { exitStatus: r.exitStatus, exitedAt: r.exitedAt ? timestampDate(r.exitedAt) : new Date() };
      } catch (err) {
        if (!isBerthError(err, 'Unavailable') || this.closing) throw err;
        // Give the close handler its turn, then follow its verdict.
        await new Promise((r) => setImmediate(r));
        if (!s.verdict) throw err;
        await s.verdict;
      }
    }
  }

  /** Deletes an exec process, or the task (then also its bundle). */
  async delete(ns: string, id: string, execId = ''): Promise<ExitStatus & { pid: number }> {
    const e = this.entry(ns, id);
    if (e.shim?.verdict) await e.shim.verdict;
    if (execId) {
      const r = await this.rpc(ns, id, (s) => s.task.delete({ id, execId }, { timeoutMs: this.slowTimeoutMs }));
      return { pid: r.pid, exitStatus: r.exitStatus, exitedAt: r.exitedAt ? timestampDate(r.exitedAt) : new Date() };
    }
    this.cgroupLocations.delete(`${ns}/${id}`);
    let out: ExitStatus & { pid: number };
    if (e.dead || !e.shim) {
      const h = this.o.handlers[e.runtime];
      if (h && !e.cleaned) {
        await this.runShimDelete(h, ns, id, e.paths);
        e.cleaned = true;
      }
      out = { pid: 0, ...(e.dead ?? { exitStatus: 255, exitedAt: new Date(), reason: SHIM_DIED }) };
    } else {
      const s = e.shim;
      try {
        const r = await s.task.delete({ id, execId: '' }, { timeoutMs: this.slowTimeoutMs });
        out = { pid: r.pid, exitStatus: r.exitStatus, exitedAt: r.exitedAt ? timestampDate(r.exitedAt) : new Date() };
      } catch (err) {
        if (!isBerthError(err, 'NotFound')) throw err;
        out = { pid: 0, exitStatus: 255, exitedAt: new Date(), reason: 'task unknown to its shim' };
      }
      e.shim = undefined;
      await this.shims.release(s, id).catch((err: unknown) => this.log.warn('shim shutdown failed', { err }));
    }
    await removeBundle(e.paths);
    this.tasks.delete(taskKey(ns, id));
    return out;
  }

  async state(ns: string, id: string, execId = ''): Promise<TaskState> {
    const e = this.entry(ns, id);
    if (e.shim?.verdict) await e.shim.verdict;
    if (e.dead) return this.deadState(e);
    const st = toTaskState(await this.rpc(ns, id, (s) => s.task.state({ id, execId })));
    if (!execId && st.status === 'stopped') st.reason = this.monitorReason(ns, id);
    return st;
  }

  private deadState(e: TaskEntry): TaskState {
    return {
      id: e.id,
      execId: '',
      bundle: e.paths.dir,
      pid: 0,
      status: 'stopped',
      stdin: '',
      stdout: '',
      stderr: '',
      terminal: false,
      exitStatus: e.dead?.exitStatus ?? 255,
      exitedAt: e.dead?.exitedAt,
      reason: e.dead?.reason,
    };
  }

  async pids(ns: string, id: string): Promise<ProcessInfo[]> {
    const r = await this.rpc(ns, id, (s) => s.task.pids({ id }));
    return r.processes.map((p) => {
      let execId: string | undefined;
      const name = p.info ? p.info.typeUrl.slice(p.info.typeUrl.lastIndexOf('/') + 1) : '';
      if (p.info && name === ProcessDetailsSchema.typeName) execId = fromBinary(ProcessDetailsSchema, p.info.value).execId || undefined;
      return execId ? { pid: p.pid, execId } : { pid: p.pid };
    });
  }

  async pause(ns: string, id: string): Promise<void> {
    await this.rpc(ns, id, (s) => s.task.pause({ id }));
  }

  async resume(ns: string, id: string): Promise<void> {
    await this.rpc(ns, id, (s) => s.task.resume({ id }));
  }

  /** Update with OCI LinuxResources (JSON object), as containerd sends it. */
  async update(ns: string, id: string, resources: Record<string, unknown>, annotations: Record<string, string> = {}): Promise<void> {
    await this.rpc(ns, id, (s) => s.task.update({ id, resources: jsonAny(RESOURCES_TYPE_URL, resources), annotations }));
  }

  /**
   * The task's cgroup metrics. With `summary`, only the fields the CRI stats use, read here from
   * the cgroup berth-shim recorded in the bundle (CGROUP_FILE): a 100-pod stats pass made 100
   * Stats calls to the node's one shim, which took 170–310 ms while kubelet's relist waited
   * behind their replies. A task without that file (another shim, not started yet) or whose
   * cgroup is gone is asked over ttrpc, as without `summary`.
   */
  async stats(ns: string, id: string, o: { summary?: boolean } = {}): Promise<TaskMetrics> {
    if (o.summary) {
      const local = this.localSummary(ns, id);
      if (local) return local;
    }
    const r = await this.rpc(ns, id, (s) => s.task.stats({ id }));
    return decodeMetrics(r.stats);
  }

  /** Parsed CGROUP_FILE records by task, valid while the file's text is the same. */
  private readonly cgroupLocations = new Map<string, { text: string; loc: CgroupLocation }>();

  private localSummary(ns: string, id: string): TaskMetrics | undefined {
    let text: string;
    try {
      // Synchronous: a small file in the state dir, and the cgroup files are made by the kernel on read.
      text = readFileSync(join(bundlePaths(this.o.stateDir, this.o.rootDir, ns, id).dir, CGROUP_FILE), 'utf8');
    } catch {
      return undefined;
    }
    const key = `${ns}/${id}`;
    let hit = this.cgroupLocations.get(key);
    if (hit?.text !== text) {
      // Parsing probes the cgroup mounts (an existsSync per controller): once per task, not per sample.
      hit = { text, loc: parseProcCgroup(text) };
      if (this.cgroupLocations.size >= 8192) this.cgroupLocations.clear();
      this.cgroupLocations.set(key, hit);
    }
    const loc = hit.loc;
    if (!cgroupExists(loc)) {
      this.cgroupLocations.delete(key);
      return undefined;
    }
    const s = usageSummary(loc);
    return s.cgroup === 'v1'
      ? { cgroup: 'v1', metrics: create(V1MetricsSchema, s.metrics as MessageInitShape<typeof V1MetricsSchema>) }
      : { cgroup: 'v2', metrics: create(V2MetricsSchema, s.metrics as MessageInitShape<typeof V2MetricsSchema>) };
  }

  /** Adds an exec process (OCI Process JSON); start it with start(ns, id, execId). */
  async exec(ns: string, id: string, execId: string, processSpec: Record<string, unknown>, io: ExecOptions = {}): Promise<void> {
    if (!execId) throw errors.invalidArgument('runtime.exec_id', 'exec id must not be empty');
    await this.rpc(ns, id, (s) =>
      s.task.exec(
        {
          id,
          execId,
          terminal: io.terminal ?? false,
          stdin: io.stdin ?? '',
          stdout: io.stdout ?? '',
          stderr: io.stderr ?? '',
          spec: jsonAny(PROCESS_TYPE_URL, processSpec),
        },
        { timeoutMs: this.slowTimeoutMs },
      ),
    );
  }

  async resizePty(ns: string, id: string, width: number, height: number, execId = ''): Promise<void> {
    await this.rpc(ns, id, (s) => s.task.resizePty({ id, execId, width, height }));
  }

  async closeIO(ns: string, id: string, execId = ''): Promise<void> {
    await this.rpc(ns, id, (s) => s.task.closeIO({ id, execId, stdin: true }));
  }

  async checkpoint(ns: string, id: string, path: string, options?: MessageInitShape<typeof CheckpointOptionsSchema>): Promise<void> {
    const any = options
      ? create(AnySchema, { typeUrl: CheckpointOptionsSchema.typeName, value: toBinary(CheckpointOptionsSchema, create(CheckpointOptionsSchema, options)) })
      : undefined;
    await this.rpc(ns, id, (s) => s.task.checkpoint({ id, path, options: any }, { timeoutMs: this.slowTimeoutMs }));
  }

  async connect(ns: string, id: string): Promise<{ shimPid: number; taskPid: number; version: string }> {
    const r = await this.rpc(ns, id, (s) => s.task.connect({ id }));
    return { shimPid: r.shimPid, taskPid: r.taskPid, version: r.version };
  }

  /** Tasks berthd knows, as [namespace, id]. */
  list(): Array<{ namespace: string; id: string; runtime: string; exited: boolean }> {
    return [...this.tasks.values()].map((e) => ({ namespace: e.namespace, id: e.id, runtime: e.runtime, exited: e.dead !== undefined }));
  }

  /** Shim pid and socket of a task (diagnostics, tests). */
  shimOf(ns: string, id: string): { pid: number | undefined; address: string } | undefined {
    const s = this.tasks.get(taskKey(ns, id))?.shim;
    return s ? { pid: s.pid, address: s.id.address } : undefined;
  }
}

function toTaskState(r: StateResponse): TaskState {
  return {
    id: r.id,
    execId: r.execId,
    bundle: r.bundle,
    pid: r.pid,
    status: statusName[r.status] ?? 'unknown',
    stdin: r.stdin,
    stdout: r.stdout,
    stderr: r.stderr,
    terminal: r.terminal,
    exitStatus: r.exitStatus,
    exitedAt: r.exitedAt && (r.exitedAt.seconds > 0n || r.exitedAt.nanos > 0) ? timestampDate(r.exitedAt) : undefined,
  };
}
