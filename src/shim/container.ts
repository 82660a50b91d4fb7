/**
 * One container (task) hosted by the shim: its bundle, its runc driver, its init process and
 * exec processes, its cgroup, its OOM watch. The Task service (service.ts) is a thin layer
 * that finds the container by id and calls these methods.
 */
import { readFileSync, writeFileSync, rmSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { decode, timestamp, type Any } from '../ttrpc/pb.js';
import { errors, BerthError } from '../errors.js';
import type { Logger } from '../log.js';
import { OptionsS, CheckpointOptionsS, Ev, type Options, type CheckpointOptions } from './task-api.js';
import { Runc, clampBundleOomScoreAdj, writeRuncRecord, RUNC_RECORD } from './runc.js';
import { Proc, type ExitStatus } from './process.js';
import { ProcessIO, reopenCriFiles, type StdioSpec } from './io.js';
import type { ConsoleSocket } from './console.js';
import { locateCgroup, oomKillCount, isV1, type CgroupLocation } from './cgroup.js';
import { mountAll, unmountAll, type RootfsMount } from './rootfs.js';
import { Topics, type Publisher } from './events.js';
import type { Reaper } from './reaper.js';

export const CRI_CONTAINER_TYPE = 'io.kubernetes.cri.container-type';
/** Update annotation asking the shim to reopen the container's CRI log file (kubelet rotation). */
export const REOPEN_LOG_ANNOTATION = 'io.berth.shim.reopen-log';

export interface ContainerDeps {
  namespace: string;
  /** Base for runc --root; the namespace is appended (one runc state dir per namespace). */
  runcRootBase: string;
  /** 0700 directory for console sockets. */
  consoleDir: string;
  reaper: Reaper;
  publisher: Publisher;
  log: Logger;
  /** How long an exit waits for its output to drain before it is reported. */
  drainTimeoutMs?: number;
  /** OOM counter poll interval. */
  oomPollMs?: number;
}

export interface CreateParams extends StdioSpec {
  id: string;
  bundle: string;
  rootfs: RootfsMount[];
  checkpoint: string;
  options: Any | undefined;
}

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export function validateId(kind: string, id: string): void {
  if (!ID_RE.test(id)) throw errors.invalidArgument('shim.bad_id', `invalid ${kind} id ${JSON.stringify(id)}`);
}

function decodeOptions(any: Any | undefined): Options | undefined {
  if (!any || any.value.length === 0) return undefined;
  if (!any.typeUrl.endsWith('containerd.runc.v1.Options')) return undefined;
  return decode(OptionsS, any.value) as unknown as Options;
}

/** Terminal support (node:tty, the console socket) is loaded only when a terminal is asked for. */
async function openConsoleSocket(dir: string): Promise<ConsoleSocket> {
  const { ConsoleSocket } = await import('./console.js');
  return ConsoleSocket.create(dir);
}

export class Container {
  readonly execs = new Map<string, Proc>();
  cgroup: CgroupLocation | undefined;
  private oomSeen = 0n;
  private oomTimer: NodeJS.Timeout | undefined;
  private mounted = false;
  private deleted = false;
  /**
   * The container has no pid namespace of its own (it joins the pod's or the host's): when its
   * init exits, the kernel does not kill the rest, so the shim does (runc kill --all), as
   * containerd's runc shim does. Otherwise leftovers keep the output pipes open.
   */
  private killAllOnExit = false;

  private constructor(
    readonly id: string,
    readonly bundle: string,
    readonly runc: Runc,
    readonly init: Proc,
    readonly cri: boolean,
    private readonly deps: ContainerDeps,
    readonly rootfsMounts: RootfsMount[],
  ) {}

  get namespace(): string {
    return this.deps.namespace;
  }

  /** Create: mount rootfs, runc create, wire stdio. Undoes partial work on failure. */
  static async create(p: CreateParams, deps: ContainerDeps): Promise<Container> {
    validateId('container', p.id);
    const bundle = resolve(p.bundle);
    const configPath = join(bundle, 'config.json');
    let configText: string;
    try {
      configText = readFileSync(configPath, 'utf8');
    } catch (err) {
      throw errors.invalidArgument('shim.bad_bundle', `bundle ${bundle}: cannot read config.json`, err);
    }
    let annotations: Record<string, string> = {};
    let pidNs: { type: string; path?: string } | undefined;
    try {
      const spec = JSON.parse(configText) as { annotations?: Record<string, string>; linux?: { namespaces?: Array<{ type: string; path?: string }> } };
      annotations = spec.annotations ?? {};
      pidNs = spec.linux?.namespaces?.find((n) => n.type === 'pid');
    } catch (err) {
      throw errors.invalidArgument('shim.bad_bundle', `bundle ${bundle}: config.json is not valid JSON`, err);
    }
    const opts = decodeOptions(p.options);
    const root = opts?.root ? opts.root : deps.runcRootBase;
    const runc = new Runc({
      binary: opts?.binaryName || undefined,
      root: join(root, deps.namespace),
      logFile: join(bundle, 'log.json'),
      systemdCgroup: opts?.systemdCgroup ?? false,
    });
    const cri = CRI_CONTAINER_TYPE in annotations;
    const init = new Proc(p.id, '', { stdin: p.stdin, stdout: p.stdout, stderr: p.stderr, terminal: p.terminal });
    const c = new Container(p.id, bundle, runc, init, cri, deps, p.rootfs);
    c.killAllOnExit = pidNs === undefined || !!pidNs.path;
    const undo: Array<() => Promise<void> | void> = [];
    try {
      if (p.rootfs.length > 0) {
        const target = join(bundle, 'rootfs');
        mkdirSync(target, { recursive: true });
        await mountAll(p.rootfs, target);
        c.mounted = true;
        undo.push(() => unmountAll(target));
      }
      writeRuncRecord(bundle, runc);
      clampBundleOomScoreAdj(configPath, configText, readFileSync('/proc/self/status', 'utf8'), Number(readFileSync('/proc/self/oom_score_adj', 'utf8').trim()));
      if (p.checkpoint) {
        throw errors.unimplemented('shim.restore', 'restore from checkpoint is not supported by berth-shim');
      }
      const io = await ProcessIO.open(init.stdio, { cri, containerId: p.id, namespace: deps.namespace });
      init.io = io;
      undo.push(() => io.close());
      const console = p.terminal ? await openConsoleSocket(deps.consoleDir) : undefined;
      // A failed `runc create` can leave runc state behind; force-delete it — unless runc
      // refused because the id already exists: that container is someone else's.
      let foreign = false;
      undo.push(() => (foreign ? undefined : runc.delete(p.id, true).catch(() => undefined)));
      try {
        const pid = await deps.reaper.hold(async () => {
          const pid = await runc
            .create(p.id, {
              bundle,
              pidFile: join(bundle, 'init.pid'),
              consoleSocket: console?.path,
              noPivot: opts?.noPivotRoot,
              noNewKeyring: opts?.noNewKeyring,
              stdio: io.stdio,
            })
            .catch((err: unknown) => {
              foreign = err instanceof BerthError && err.kind === 'AlreadyExists';
              throw err;
            });
          init.pid = pid;
          deps.reaper.watch(pid, (e) => void c.onExit(init, e.status, e.exitedAt));
          return pid;
        });
        io.closeChildSide();
        if (console) io.attachPty(console.receivePty());
        try {
          c.cgroup = locateCgroup(pid);
          c.oomSeen = oomKillCount(c.cgroup);
        } catch {
          // The process may already be gone (killed during create): no cgroup, no OOM watch.
        }
      } finally {
        console?.close();
      }
      return c;
    } catch (err) {
      if (init.pid) deps.reaper.unwatch(init.pid);
      for (const u of undo.reverse()) await Promise.resolve(u()).catch(() => undefined);
      throw err;
    }
  }

  /** The process addressed by execId ('' → init); NotFound otherwise. */
  process(execId: string): Proc {
    if (!execId) return this.init;
    const p = this.execs.get(execId);
    if (!p) throw errors.notFound('shim.exec_not_found', `exec ${execId} not found in container ${this.id}`);
    return p;
  }

  /** Start the init process (runc start) or an exec (runc exec --detach). Returns the pid. */
  async start(execId: string): Promise<number> {
    const p = this.process(execId);
    p.require('start', 'created');
    if (p.startGate) throw errors.failedPrecondition('shim.bad_state', `cannot start ${p.label}: already starting`);
    if (!p.isInit && this.init.state !== 'running') {
      throw errors.failedPrecondition('shim.bad_state', `cannot start exec ${execId}: container ${this.id} is ${this.init.state}`);
    }
    let open!: () => void;
    p.startGate = new Promise<void>((r) => (open = r));
    try {
      if (p.isInit) {
        await this.runc.start(this.id);
        p.transition('running');
        this.startOomWatch();
        this.deps.publisher.publish(Topics.start, Ev.TaskStart, { containerId: this.id, pid: p.pid });
      } else {
        await this.startExec(p);
        p.transition('running');
        this.deps.publisher.publish(
          Topics.execStarted,
          Ev.TaskExecStarted, { containerId: this.id, execId, pid: p.pid },
        );
      }
      return p.pid;
    } finally {
      p.startGate = undefined;
      open();
    }
  }

  private execSpecPath(execId: string): string {
    return join(this.bundle, `.exec-${execId}.json`);
  }

  /** Register an exec (Exec RPC): nothing runs until Start. */
  addExec(execId: string, stdio: StdioSpec, spec: Any | undefined): void {
    validateId('exec', execId);
    if (this.execs.has(execId)) throw errors.alreadyExists('shim.exec_exists', `exec ${execId} already exists in container ${this.id}`);
    this.init.require('exec in', 'running', 'created');
    if (!spec || spec.value.length === 0) throw errors.invalidArgument('shim.bad_exec_spec', `exec ${execId}: missing process spec`);
    let processSpec: { terminal?: boolean; args?: unknown };
    try {
      processSpec = JSON.parse(Buffer.from(spec.value).toString('utf8')) as typeof processSpec;
    } catch (err) {
      throw errors.invalidArgument('shim.bad_exec_spec', `exec ${execId}: process spec is not JSON`, err);
    }
    if (!Array.isArray(processSpec.args) || processSpec.args.length === 0) {
      throw errors.invalidArgument('shim.bad_exec_spec', `exec ${execId}: process spec has no args`);
    }
    // The Exec request's terminal flag is authoritative for the spec runc sees.
    processSpec.terminal = stdio.terminal;
    writeFileSync(this.execSpecPath(execId), JSON.stringify(processSpec), { mode: 0o600 });
    this.execs.set(execId, new Proc(this.id, execId, stdio));
    this.deps.publisher.publish(Topics.execAdded, Ev.TaskExecAdded, { containerId: this.id, execId });
  }

  private async startExec(p: Proc): Promise<void> {
    const io = await ProcessIO.open(p.stdio, { cri: this.cri, containerId: this.id, namespace: this.deps.namespace });
    p.io = io;
    const console = p.stdio.terminal ? await openConsoleSocket(this.deps.consoleDir) : undefined;
    try {
      await this.deps.reaper.hold(async () => {
        const pid = await this.runc.exec(this.id, {
          processFile: this.execSpecPath(p.execId),
          pidFile: join(this.bundle, `.exec-${p.execId}.pid`),
          consoleSocket: console?.path,
          stdio: io.stdio,
        });
        p.pid = pid;
        this.deps.reaper.watch(pid, (e) => void this.onExit(p, e.status, e.exitedAt));
      });
      io.closeChildSide();
      if (console) io.attachPty(console.receivePty());
    } catch (err) {
      await io.close();
      p.io = undefined;
      throw err;
    } finally {
      console?.close();
    }
  }

  /** Reaper callback: drain output, report OOM, record the exit, publish TaskExit. */
  private async onExit(p: Proc, status: number, exitedAt: Date): Promise<void> {
    // Deleted before it ran (runc delete --force of a created container): Delete reported it.
    if (p.state === 'deleted') return;
    if (p.startGate) await p.startGate;
    if (p.isInit && this.killAllOnExit) await this.runc.kill(this.id, 9, true).catch(() => undefined);
    if (p.io) await p.io.drain(this.deps.drainTimeoutMs ?? 2000);
    if (p.isInit) {
      this.checkOom();
      this.stopOomWatch();
    }
    p.setExited(status, exitedAt);
    this.deps.publisher.publish(
      Topics.exit,
      Ev.TaskExit, {
        containerId: this.id,
        id: p.isInit ? this.id : p.execId,
        pid: p.pid,
        exitStatus: status,
        exitedAt: timestamp(exitedAt),
      },
    );
  }

  /**
   * OOM detection: poll the cgroup's oom_kill counter (v1 memory.oom_control, v2
   * memory.events) every oomPollMs while running, and once more when init exits so TaskOOM
   * precedes TaskExit. Polling a counter cannot miss an event the way a racing eventfd
   * registration can, and needs no blocked thread.
   */
  private startOomWatch(): void {
    if (!this.cgroup || this.oomTimer) return;
    this.oomTimer = setInterval(() => this.checkOom(), this.deps.oomPollMs ?? 1000);
    this.oomTimer.unref();
  }

  private stopOomWatch(): void {
    if (this.oomTimer) clearInterval(this.oomTimer);
    this.oomTimer = undefined;
  }

  private checkOom(): void {
    if (!this.cgroup) return;
    const n = oomKillCount(this.cgroup);
    if (n > this.oomSeen) {
      this.oomSeen = n;
      this.deps.publisher.publish(Topics.oom, Ev.TaskOOM, { containerId: this.id });
    }
  }

  async kill(execId: string, signal: number, all: boolean): Promise<void> {
    const p = this.process(execId);
    if (p.state === 'stopped' || p.state === 'deleted') {
      throw errors.notFound('shim.process_finished', `${p.label}: process already finished`);
    }
    if (p.isInit) {
      await this.runc.kill(this.id, signal, all);
      return;
    }
    if (p.state === 'created') throw errors.failedPrecondition('shim.bad_state', `cannot kill ${p.label}: not started`);
    try {
      process.kill(p.pid, signal);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') throw errors.notFound('shim.process_finished', `${p.label}: process already finished`);
      throw err;
    }
  }

  /** Delete a process. For init: runc delete, close io, unmount rootfs. */
  async delete(execId: string): Promise<ExitStatus & { pid: number }> {
    const p = this.process(execId);
    p.require('delete', 'created', 'stopped');
    if (!p.isInit) {
      this.execs.delete(execId);
      p.transition('deleted');
      await p.io?.close();
      rmSync(this.execSpecPath(execId), { force: true });
      rmSync(join(this.bundle, `.exec-${execId}.pid`), { force: true });
      const exit = p.exit ?? { status: 0, exitedAt: new Date() };
      return { pid: p.pid, ...exit };
    }
    for (const e of this.execs.values()) {
      if (e.state === 'running') throw errors.failedPrecondition('shim.bad_state', `cannot delete container ${this.id}: exec ${e.execId} is still running`);
    }
    await this.destroy();
    if (p.state === 'created') {
      // Never started: runc delete --force killed it; the reaper reports the exit.
      p.setExited(p.exit?.status ?? 137, p.exit?.exitedAt ?? new Date());
    }
    p.transition('deleted');
    const exit = p.exit ?? { status: 137, exitedAt: new Date() };
    this.deps.publisher.publish(
      Topics.delete,
      Ev.TaskDelete, { containerId: this.id, id: this.id, pid: p.pid, exitStatus: exit.status, exitedAt: timestamp(exit.exitedAt) },
    );
    return { pid: p.pid, ...exit };
  }

  /** Remove everything of this container from the host (idempotent). */
  async destroy(): Promise<void> {
    if (this.deleted) return;
    this.stopOomWatch();
    try {
      await this.runc.delete(this.id, true);
    } catch (err) {
      if (!(err instanceof BerthError && err.kind === 'NotFound')) throw err;
    }
    this.deleted = true;
    if (this.init.pid && !this.init.exit) this.deps.reaper.poll();
    for (const e of this.execs.values()) await e.io?.close();
    await this.init.io?.close();
    if (this.mounted) {
      await unmountAll(join(this.bundle, 'rootfs'));
      this.mounted = false;
    }
    for (const f of ['init.pid', RUNC_RECORD]) rmSync(join(this.bundle, f), { force: true });
  }

  async pause(): Promise<void> {
    this.init.require('pause', 'running');
    this.init.transition('pausing');
    try {
      await this.runc.pause(this.id);
    } catch (err) {
      if (this.init.state === 'pausing') this.init.transition('running');
      throw err;
    }
    if (this.init.state === 'pausing') this.init.transition('paused');
    this.deps.publisher.publish(Topics.paused, Ev.TaskPaused, { containerId: this.id });
  }

  async resume(): Promise<void> {
    this.init.require('resume', 'paused');
    await this.runc.resume(this.id);
    if (this.init.state === 'paused') this.init.transition('running');
    this.deps.publisher.publish(Topics.resumed, Ev.TaskResumed, { containerId: this.id });
  }

  async pids(): Promise<Array<{ pid: number; execId: string }>> {
    this.init.require('list processes of', 'created', 'running', 'paused', 'pausing');
    const pids = await this.runc.ps(this.id);
    const byPid = new Map<number, string>();
    for (const e of this.execs.values()) if (e.pid) byPid.set(e.pid, e.execId);
    return pids.map((pid) => ({ pid, execId: byPid.get(pid) ?? '' }));
  }

  /** Update: resources (JSON LinuxResources) and/or the reopen-log annotation. */
  async update(resources: Any | undefined, annotations: Record<string, string>): Promise<void> {
    if (annotations[REOPEN_LOG_ANNOTATION]) {
      const paths = [...(this.init.io?.logPaths ?? [])];
      for (const e of this.execs.values()) paths.push(...(e.io?.logPaths ?? []));
      await reopenCriFiles(paths);
    }
    if (resources && resources.value.length > 0) {
      this.init.require('update', 'created', 'running', 'paused');
      let parsed: unknown;
      try {
        parsed = JSON.parse(Buffer.from(resources.value).toString('utf8'));
      } catch (err) {
        throw errors.invalidArgument('shim.bad_resources', 'update: resources are not JSON LinuxResources', err);
      }
      await this.runc.update(this.id, parsed);
    }
  }

  async checkpoint(path: string, options: Any | undefined): Promise<void> {
    this.init.require('checkpoint', 'running', 'paused');
    const o = options && options.value.length ? (decode(CheckpointOptionsS, options.value) as unknown as CheckpointOptions) : undefined;
    const imagePath = o?.imagePath || path;
    if (!imagePath) throw errors.invalidArgument('shim.bad_checkpoint', 'checkpoint: no image path');
    mkdirSync(imagePath, { recursive: true });
    await this.runc.checkpoint(this.id, {
      imagePath,
      workPath: o?.workPath || undefined,
      leaveRunning: !(o?.exit ?? false),
      tcpEstablished: o?.openTcp,
      externalUnixSockets: o?.externalUnixSockets,
      shellJob: o?.terminal,
      fileLocks: o?.fileLocks,
    });
    this.deps.publisher.publish(Topics.checkpointed, Ev.TaskCheckpointed, { containerId: this.id, checkpoint: imagePath });
  }

  resizePty(execId: string, width: number, height: number): void {
    const p = this.process(execId);
    const pty = p.io?.terminal;
    if (!pty) throw errors.failedPrecondition('shim.no_terminal', `${p.label} has no terminal`);
    pty.resize(width, height);
  }

  closeIO(execId: string): void {
    const p = this.process(execId);
    p.io?.closeStdin();
  }

  get cgroupIsV1(): boolean {
    return this.cgroup !== undefined && isV1(this.cgroup);
  }

  /** Whether the container still needs the shim (not deleted). */
  get alive(): boolean {
    return this.init.state !== 'deleted';
  }
}
