/**
 * One container (task) hosted by the shim. conmon is the parent of its init and of each exec
 * (conmon.ts): the shim holds no container's stdio and keeps nothing that is not on disk in
 * the bundle (layout in ../shim-protocol.ts), so Container.load() + takeOver() rebuild a container in a new
 * shim after the old one was killed or replaced, and reports exits that happened meanwhile.
 *
 * How an exit is seen: a monitor the shim started is its child (posix_spawn, conmon --sync)
 * and is reaped when it exits; a monitor inherited from an earlier shim is polled
 * (pollMonitors, once a second). Either way the exit code is the one conmon wrote to
 * <procdir>/exit, with that file's mtime as the exit time. A monitor that died without
 * writing it (kill -9 of conmon) takes its process down: the shim kills the process and
 * records exit 255 with a reason naming the monitor (<procdir>/exit-reason).
 */
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  renameSync,
  writeFileSync,
  openSync,
  closeSync,
  writeSync,
  constants as C,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { decode, timestamp, type Any } from '../ttrpc/pb.js';
import { errors, BerthError } from '../errors.js';
import { Cleanup } from '../cleanup.js';
import type { Logger } from '../log.js';
import {
  CGROUP_FILE,
  CRI_CONTAINER_TYPE_ANNOTATION,
  CTL_REOPEN_LOGS,
  CTL_RESIZE,
  EXIT_REASON_FILE,
  REOPEN_LOG_ANNOTATION,
  attachLinkDir,
  attachSocketPath,
  conmonCuuid,
  parseAttachStdin,
  processDir,
  taskRegistryPath,
} from '../shim-protocol.js';
import { OptionsS, CheckpointOptionsS, Ev, type Options, type CheckpointOptions } from './task-api.js';
import { Runc, clampBundleOomScoreAdj, writeRuncRecord, RUNC_RECORD } from './runc.js';
import { Proc, type ExitStatus } from './process.js';
import { Bridge, needsBridge, parseStdioUri, type StdioSpec } from './bridge.js';
import { conmonCreate, conmonExec } from './conmon.js';
import { parseProcCgroup, oomKillCount, isV1, type CgroupLocation } from '../cgroup-stats.js';
import { mountAll, unmountAll, type RootfsMount } from './rootfs.js';
import { Topics, type Publisher } from './events.js';
import type { Reaper } from './reaper.js';

export { CRI_CONTAINER_TYPE_ANNOTATION as CRI_CONTAINER_TYPE, REOPEN_LOG_ANNOTATION };

export interface ContainerDeps {
  namespace: string;
  /** Base for runc --root; the namespace is appended (one runc state dir per namespace). */
  runcRootBase: string;
  /** The shim's state dir (registry, attach links). */
  stateDir: string;
  /** conmon binary. */
  conmon: string;
  reaper: Reaper;
  publisher: Publisher;
  log: Logger;
  /** How long an exit waits for a bridge to finish writing output. */
  drainTimeoutMs?: number;
}

export interface CreateParams extends StdioSpec {
  id: string;
  bundle: string;
  rootfs: RootfsMount[];
  checkpoint: string;
  options: Any | undefined;
}

/** monitor.json: what a new shim needs to take the container over. */
interface TaskRecord {
  version: 1;
  id: string;
  namespace: string;
  bundle: string;
  runc: { root: string; binary: string; systemdCgroup: boolean };
  stdio: StdioSpec;
  cri: boolean;
  killAllOnExit: boolean;
  mounted: boolean;
}

/** process.json beside an exec's files, with the stdio it was started with. */
interface ExecRecord {
  version: 1;
  execId: string;
  stdio: StdioSpec;
}

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const TASK_RECORD = 'monitor.json';
const EXEC_RECORD = 'monitor.json';

export function validateId(kind: string, id: string): void {
  if (!ID_RE.test(id)) throw errors.invalidArgument('shim.bad_id', `invalid ${kind} id ${JSON.stringify(id)}`);
}

function decodeOptions(any: Any | undefined): Options | undefined {
  if (!any || any.value.length === 0) return undefined;
  if (!any.typeUrl.endsWith('containerd.runc.v1.Options')) return undefined;
  return decode(OptionsS, any.value) as unknown as Options;
}

function readInt(path: string): number | undefined {
  try {
    const n = Number.parseInt(readFileSync(path, 'utf8').trim(), 10);
    return Number.isInteger(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

/** The exit conmon (or the shim, for a dead monitor) recorded in a process dir. */
export function readExit(dir: string): (ExitStatus & { reason?: string }) | undefined {
  const status = readInt(join(dir, 'exit'));
  if (status === undefined) return undefined;
  let exitedAt = new Date();
  try {
    exitedAt = statSync(join(dir, 'exit')).mtime;
  } catch {
    // keep now
  }
  let reason: string | undefined;
  try {
    reason = readFileSync(join(dir, EXIT_REASON_FILE), 'utf8').trim() || undefined;
  } catch {
    reason = undefined;
  }
  // conmon writes -1 when it could not learn the status (a timed-out exec it killed).
  return { status: status < 0 ? 137 : status, exitedAt, reason };
}

/** A process's start time (clock ticks since boot, /proc/<pid>/stat field 22): with the pid, its identity. */
export function procStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (rest[0] === 'Z') return undefined;
    return rest[19];
  } catch {
    return undefined;
  }
}

/** Records which process a pid file names (pid reuse must not fool a later shim). */
function recordIdentity(pidFile: string, pid: number): void {
  const t = procStartTime(pid);
  if (t) writeFileSync(`${pidFile}.start`, t);
}

/** The process a pid file names is still that process (not a zombie, not a reused pid). */
export function sameProcess(pidFile: string, pid: number | undefined): boolean {
  if (!pid) return false;
  const now = procStartTime(pid);
  if (now === undefined) return false;
  try {
    return readFileSync(`${pidFile}.start`, 'utf8').trim() === now;
  } catch {
    return false;
  }
}

/**
 * A live conmon of this process: not a zombie, started when the shim recorded it, and its
 * command line names our cuuid.
 */
export function monitorAlive(pid: number | undefined, cuuid: string, pidFile?: string): boolean {
  if (!pid) return false;
  try {
    if (pidFile && !sameProcess(pidFile, pid)) return false;
    if (procStartTime(pid) === undefined) return false;
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(cuuid);
  } catch {
    return false;
  }
}

/** What the shim tracks of one monitored process (init or exec) beside its state machine. */
interface Monitored {
  proc: Proc;
  dir: string;
  cuuid: string;
  conmonPid: number;
  /** The monitor is not our child (inherited from an earlier shim): poll it. */
  adopted: boolean;
  bridge?: Bridge;
  /** The exit is being handled (idempotence of onMonitorExit). */
  exiting?: boolean;
}

export class Container {
  readonly execs = new Map<string, Proc>();
  private readonly monitored = new Map<string, Monitored>();
  cgroup: CgroupLocation | undefined;
  private mounted = false;
  private deleted = false;

  private constructor(
    readonly id: string,
    readonly bundle: string,
    readonly runc: Runc,
    readonly init: Proc,
    readonly cri: boolean,
    private readonly deps: ContainerDeps,
    private readonly killAllOnExit: boolean,
  ) {}

  get namespace(): string {
    return this.deps.namespace;
  }

  private get registryPath(): string {
    return taskRegistryPath(this.deps.stateDir, this.deps.namespace, this.id);
  }

  private record(stdio: StdioSpec): TaskRecord {
    return {
      version: 1,
      id: this.id,
      namespace: this.deps.namespace,
      bundle: this.bundle,
      runc: { root: this.runc.root, binary: this.runc.binary, systemdCgroup: this.runc.systemdCgroup },
      stdio,
      cri: this.cri,
      killAllOnExit: this.killAllOnExit,
      mounted: this.mounted,
    };
  }

  private linkAttach(cuuid: string, dir: string): void {
    // conmon makes this link itself; making it first lets a client find the dir at once.
    mkdirSync(attachLinkDir(this.deps.stateDir), { recursive: true, mode: 0o700 });
    const link = join(attachLinkDir(this.deps.stateDir), cuuid);
    rmSync(link, { force: true });
    symlinkSync(dir, link);
  }

  /** Create: mount rootfs, conmon + runc create, bridge stdio. Undoes partial work on failure. */
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
    if (p.checkpoint) throw errors.unimplemented('shim.restore', 'restore from checkpoint is not supported by berth-shim');
    const cri = CRI_CONTAINER_TYPE_ANNOTATION in annotations;
    const stdio: StdioSpec = { stdin: p.stdin, stdout: p.stdout, stderr: p.stderr, terminal: p.terminal };
    const plan = stdioPlan(stdio, cri);
    const opts = decodeOptions(p.options);
    const root = opts?.root ? opts.root : deps.runcRootBase;
    const runc = new Runc({
      binary: opts?.binaryName || undefined,
      root: join(root, deps.namespace),
      logFile: join(bundle, 'log.json'),
      systemdCgroup: opts?.systemdCgroup ?? false,
    });
    const init = new Proc(p.id, '', stdio);
    const c = new Container(p.id, bundle, runc, init, cri, deps, pidNs === undefined || !!pidNs.path);
    // Every undo runs whatever failed before it (as before: the shim keeps no record of a failed create).
    const undo = new Cleanup(deps.log);
    try {
      if (p.rootfs.length > 0) {
        const target = join(bundle, 'rootfs');
        mkdirSync(target, { recursive: true });
        await mountAll(p.rootfs, target);
        c.mounted = true;
        undo.push('unmount rootfs', () => unmountAll(target));
      }
      writeRuncRecord(bundle, runc);
      // conmon resets the runtime's oom_score_adj to 0 before it execs runc (it may not go
      // lower without CAP_SYS_RESOURCE): clamp against what runc will really start with.
      const own = Number(readFileSync('/proc/self/oom_score_adj', 'utf8').trim());
      clampBundleOomScoreAdj(configPath, configText, readFileSync('/proc/self/status', 'utf8'), Math.max(own, 0));
      writeFileSync(join(bundle, TASK_RECORD), JSON.stringify(c.record(stdio)), { mode: 0o600 });
      mkdirSync(join(deps.stateDir, 'tasks', deps.namespace), { recursive: true, mode: 0o700 });
      writeFileSync(c.registryPath, bundle, { mode: 0o600 });
      undo.push('remove registry entry', () => rmSync(c.registryPath, { force: true }));
      for (const f of ['exit', EXIT_REASON_FILE, 'exit-reported', 'oom', 'init.pid', 'conmon.pid']) rmSync(join(bundle, f), { force: true });
      const cuuid = conmonCuuid(deps.namespace, p.id);
      const exitDir = join(bundle, 'exits');
      mkdirSync(exitDir, { recursive: true, mode: 0o700 });
      c.linkAttach(cuuid, bundle);
      undo.push('remove attach link', () => rmSync(join(attachLinkDir(deps.stateDir), cuuid), { force: true }));
      // A failed create can leave runc state behind; force-delete it — unless runc refused
      // because the id already exists: that container is someone else's.
      let foreign = false;
      undo.push('runc delete', () => (foreign ? undefined : runc.delete(p.id, true).catch(() => undefined)));
      const started = await deps.reaper
        .hold(() =>
          conmonCreate({
            conmon: deps.conmon,
            runc,
            containerId: p.id,
            cuuid,
            procDir: bundle,
            socketDir: attachLinkDir(deps.stateDir),
            terminal: p.terminal,
            stdin: plan.stdin,
            stdinOnce: plan.stdinOnce,
            logPath: plan.logPath,
            pidFile: join(bundle, 'init.pid'),
            conmonPidFile: join(bundle, 'conmon.pid'),
            reaper: deps.reaper,
            bundle,
            // conmon names its exit file after the container id: a dir of its own, so no id
            // can land on a file of the bundle.
            exitDir,
            noPivot: opts?.noPivotRoot,
            noNewKeyring: opts?.noNewKeyring,
          }),
        )
        .catch((err: unknown) => {
          foreign = err instanceof BerthError && err.kind === 'AlreadyExists';
          throw err;
        });
      init.pid = started.pid;
      recordIdentity(join(bundle, 'conmon.pid'), started.conmonPid);
      recordIdentity(join(bundle, 'init.pid'), started.pid);
      const m: Monitored = { proc: init, dir: bundle, cuuid, conmonPid: started.conmonPid, adopted: false };
      c.monitored.set('', m);
      if (plan.bridge) m.bridge = await Bridge.open(attachSocketPath(deps.stateDir, deps.namespace, p.id), stdio);
      deps.reaper.watch(started.conmonPid, () => void c.onMonitorExit(m));
      try {
        // Kept: a later shim must not derive it from a pid that may have been reused.
        const text = readFileSync(`/proc/${started.pid}/cgroup`, 'utf8');
        // Whole or absent: berthd reads it for the CRI stats while the container runs.
        writeFileSync(join(bundle, `${CGROUP_FILE}.tmp`), text);
        renameSync(join(bundle, `${CGROUP_FILE}.tmp`), join(bundle, CGROUP_FILE));
        c.cgroup = parseProcCgroup(text);
      } catch {
        c.cgroup = undefined;
      }
      return c;
    } catch (err) {
      await undo.unwind();
      throw err;
    }
  }

  /** Rebuilds a container from its bundle (a new shim taking over). */
  static load(bundle: string, deps: ContainerDeps): Container | undefined {
    let rec: TaskRecord;
    try {
      rec = JSON.parse(readFileSync(join(bundle, TASK_RECORD), 'utf8')) as TaskRecord;
    } catch {
      return undefined;
    }
    if (rec.version !== 1 || rec.namespace !== deps.namespace) return undefined;
    const runc = new Runc({ root: rec.runc.root, binary: rec.runc.binary, systemdCgroup: rec.runc.systemdCgroup, logFile: join(bundle, 'log.json') });
    const init = new Proc(rec.id, '', rec.stdio);
    const c = new Container(rec.id, bundle, runc, init, rec.cri, deps, rec.killAllOnExit);
    c.mounted = rec.mounted;
    const cuuid = conmonCuuid(deps.namespace, rec.id);
    init.pid = readInt(join(bundle, 'init.pid')) ?? 0;
    const m: Monitored = { proc: init, dir: bundle, cuuid, conmonPid: readInt(join(bundle, 'conmon.pid')) ?? 0, adopted: true };
    c.monitored.set('', m);
    try {
      c.cgroup = parseProcCgroup(readFileSync(join(bundle, CGROUP_FILE), 'utf8'));
    } catch {
      c.cgroup = undefined;
    }
    // Execs: every process dir with its record.
    let names: string[] = [];
    try {
      names = readdirSync(join(bundle, 'x'));
    } catch {
      names = [];
    }
    for (const execId of names) {
      const dir = processDir(bundle, execId);
      let er: ExecRecord;
      try {
        er = JSON.parse(readFileSync(join(dir, EXEC_RECORD), 'utf8')) as ExecRecord;
      } catch {
        continue;
      }
      const p = new Proc(rec.id, execId, er.stdio);
      p.pid = readInt(join(dir, 'pid')) ?? 0;
      c.execs.set(execId, p);
      // A monitor was started: the exec runs (or ran), even if its pid was not written yet
      // (conmon goes on when the shim dies during Start). It is never "created" again.
      const conmonPid = readInt(join(dir, 'conmon.pid')) ?? 0;
      if (p.pid || conmonPid) {
        p.transition('running');
        c.monitored.set(execId, { proc: p, dir, cuuid: conmonCuuid(deps.namespace, rec.id, execId), conmonPid, adopted: true });
      }
    }
    return c;
  }

  /**
   * After load(): learn the init's state (runc state; exit file), reconnect bridges of live
   * processes, and handle exits that happened while no shim ran.
   */
  async takeOver(): Promise<void> {
    const m = this.monitored.get('');
    if (!m) return;
    const exit = readExit(m.dir);
    if (!exit) {
      try {
        const st = await this.runc.state(this.id);
        if (st.status === 'running') this.init.transition('running');
        else if (st.status === 'paused') {
          this.init.transition('running');
          this.init.transition('paused');
        }
      } catch {
        // runc knows nothing: the monitor poll below decides
      }
    }
    for (const mon of this.monitored.values()) {
      if (readExit(mon.dir) || !monitorAlive(mon.conmonPid, mon.cuuid, join(mon.dir, 'conmon.pid'))) {
        await this.onMonitorExit(mon);
        continue;
      }
      if (needsBridge(mon.proc.stdio) && (!this.cri || !mon.proc.isInit)) {
        mon.bridge = await Bridge.open(attachSocketPath(this.deps.stateDir, this.deps.namespace, this.id, mon.proc.execId), mon.proc.stdio).catch(
          () => undefined,
        );
      }
    }
  }

  /** Polls inherited monitors (called once a second by the service). */
  pollMonitors(): void {
    for (const m of this.monitored.values()) {
      if (!m.adopted || m.exiting) continue;
      if (!monitorAlive(m.conmonPid, m.cuuid, join(m.dir, 'conmon.pid'))) void this.onMonitorExit(m);
    }
  }

  get hasAdoptedMonitors(): boolean {
    for (const m of this.monitored.values()) if (m.adopted && !m.exiting) return true;
    return false;
  }

  /** The monitor of a process exited: record and publish the exit (once). */
  private async onMonitorExit(m: Monitored): Promise<void> {
    if (m.exiting) return;
    m.exiting = true;
    const p = m.proc;
    if (p.state === 'deleted') return;
    if (p.startGate) await p.startGate;
    let exit = readExit(m.dir);
    if (!exit) {
      // The monitor died without recording an exit: the process has lost its stdio holder.
      const reason = `monitor conmon (pid ${m.conmonPid}) of ${p.label} died`;
      this.deps.log.warn('monitor died', { id: this.id, execId: p.execId, conmon: m.conmonPid });
      if (p.isInit) await this.runc.kill(this.id, 9, true).catch(() => undefined);
      else if (p.pid && sameProcess(join(m.dir, 'pid'), p.pid)) {
        try {
          process.kill(p.pid, 9);
        } catch {
          // gone already
        }
      }
      // Record it first: a shim that dies now still finds the verdict.
      writeFileSync(join(m.dir, EXIT_REASON_FILE), reason);
      writeFileSync(join(m.dir, 'exit'), '255');
      exit = readExit(m.dir) ?? { status: 255, exitedAt: new Date(), reason };
    }
    if (p.isInit && this.killAllOnExit) await this.runc.kill(this.id, 9, true).catch(() => undefined);
    if (m.bridge) {
      await m.bridge.drain(this.deps.drainTimeoutMs ?? 2000);
      m.bridge.close();
      m.bridge = undefined;
    }
    if (p.isInit && (existsSync(join(m.dir, 'oom')) || (this.cgroup && safeOomCount(this.cgroup) > 0n))) {
      this.deps.publisher.publish(Topics.oom, Ev.TaskOOM, { containerId: this.id });
    }
    p.setExited(exit.status, exit.exitedAt);
    if (!existsSync(join(m.dir, 'exit-reported'))) {
      const delivered = this.deps.publisher.publish(Topics.exit, Ev.TaskExit, {
        containerId: this.id,
        id: p.isInit ? this.id : p.execId,
        pid: p.pid,
        exitStatus: exit.status,
        exitedAt: timestamp(exit.exitedAt),
      });
      // Marked only once delivered: a shim that dies before then reports it again.
      void delivered.then((ok) => {
        if (!ok) return;
        try {
          writeFileSync(join(m.dir, 'exit-reported'), '');
        } catch {
          // the process dir is gone (deleted meanwhile)
        }
      });
    }
  }

  process(execId: string): Proc {
    if (!execId) return this.init;
    const p = this.execs.get(execId);
    if (!p) throw errors.notFound('shim.exec_not_found', `exec ${execId} not found in container ${this.id}`);
    return p;
  }

  /** Start the init (runc start, through its exec fifo) or an exec (conmon --exec). */
  async start(execId: string): Promise<number> {
    const p = this.process(execId);
    p.require('start', 'created');
    if (!p.isInit && this.init.state !== 'running') {
      throw errors.failedPrecondition('shim.bad_state', `cannot start exec ${execId}: container ${this.id} is ${this.init.state}`);
    }
    let open!: () => void;
    p.startGate = new Promise<void>((r) => (open = r));
    try {
      if (p.isInit) {
        await this.runc.start(this.id, p.pid);
        p.transition('running');
        this.deps.publisher.publish(Topics.start, Ev.TaskStart, { containerId: this.id, pid: p.pid });
      } else {
        await this.startExec(p);
        p.transition('running');
        this.deps.publisher.publish(Topics.execStarted, Ev.TaskExecStarted, { containerId: this.id, execId, pid: p.pid });
      }
      return p.pid;
    } finally {
      p.startGate = undefined;
      open();
    }
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
    Bridge.check(stdio);
    // The Exec request's terminal flag is authoritative for the spec runc sees.
    processSpec.terminal = stdio.terminal;
    const dir = processDir(this.bundle, execId);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    writeFileSync(join(dir, 'process.json'), JSON.stringify(processSpec), { mode: 0o600 });
    const rec: ExecRecord = { version: 1, execId, stdio };
    writeFileSync(join(dir, EXEC_RECORD), JSON.stringify(rec), { mode: 0o600 });
    this.execs.set(execId, new Proc(this.id, execId, stdio));
    this.deps.publisher.publish(Topics.execAdded, Ev.TaskExecAdded, { containerId: this.id, execId });
  }

  private async startExec(p: Proc): Promise<void> {
    const dir = processDir(this.bundle, p.execId);
    const cuuid = conmonCuuid(this.deps.namespace, this.id, p.execId);
    this.linkAttach(cuuid, dir);
    const bridged = needsBridge(p.stdio);
    let bridge: Bridge | undefined;
    try {
      const started = await this.deps.reaper.hold(() =>
        conmonExec(
          {
            conmon: this.deps.conmon,
            runc: this.runc,
            containerId: this.id,
            cuuid,
            procDir: dir,
            socketDir: attachLinkDir(this.deps.stateDir),
            terminal: p.stdio.terminal,
            stdin: !!p.stdio.stdin,
            stdinOnce: true,
            pidFile: join(dir, 'pid'),
            conmonPidFile: join(dir, 'conmon.pid'),
            reaper: this.deps.reaper,
            processFile: join(dir, 'process.json'),
            attach: bridged,
          },
          bridged
            ? async () => {
                bridge = await Bridge.open(attachSocketPath(this.deps.stateDir, this.deps.namespace, this.id, p.execId), p.stdio);
              }
            : undefined,
        ),
      );
      p.pid = started.pid;
      recordIdentity(join(dir, 'conmon.pid'), started.conmonPid);
      recordIdentity(join(dir, 'pid'), started.pid);
      const m: Monitored = { proc: p, dir, cuuid, conmonPid: started.conmonPid, adopted: false, bridge };
      this.monitored.set(p.execId, m);
      this.deps.reaper.watch(started.conmonPid, () => void this.onMonitorExit(m));
    } catch (err) {
      bridge?.close();
      rmSync(join(attachLinkDir(this.deps.stateDir), cuuid), { force: true });
      throw err;
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
    if (readExit(processDir(this.bundle, execId)) || !sameProcess(join(processDir(this.bundle, execId), 'pid'), p.pid)) {
      throw errors.notFound('shim.process_finished', `${p.label}: process already finished`);
    }
    try {
      process.kill(p.pid, signal);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') throw errors.notFound('shim.process_finished', `${p.label}: process already finished`);
      throw err;
    }
  }

  /** Delete a process. For init: runc delete, unmount rootfs, forget the container. */
  async delete(execId: string): Promise<ExitStatus & { pid: number }> {
    const p = this.process(execId);
    p.require('delete', 'created', 'stopped');
    if (!p.isInit) {
      this.execs.delete(execId);
      p.transition('deleted');
      this.forget(execId);
      rmSync(processDir(this.bundle, execId), { recursive: true, force: true });
      const exit = p.exit ?? { status: 0, exitedAt: new Date() };
      return { pid: p.pid, ...exit };
    }
    for (const e of this.execs.values()) {
      if (e.state === 'running') throw errors.failedPrecondition('shim.bad_state', `cannot delete container ${this.id}: exec ${e.execId} is still running`);
    }
    await this.destroy();
    if (p.state === 'created') {
      // Never started: runc delete --force killed it.
      p.setExited(p.exit?.status ?? 137, p.exit?.exitedAt ?? new Date());
    }
    p.transition('deleted');
    const exit = p.exit ?? { status: 137, exitedAt: new Date() };
    this.deps.publisher.publish(Topics.delete, Ev.TaskDelete, {
      containerId: this.id,
      id: this.id,
      pid: p.pid,
      exitStatus: exit.status,
      exitedAt: timestamp(exit.exitedAt),
    });
    return { pid: p.pid, ...exit };
  }

  private forget(execId: string): void {
    const m = this.monitored.get(execId);
    if (!m) return;
    this.monitored.delete(execId);
    m.bridge?.close();
    rmSync(join(attachLinkDir(this.deps.stateDir), m.cuuid), { force: true });
  }

  /** Remove everything of this container from the host (idempotent). */
  async destroy(): Promise<void> {
    if (this.deleted) return;
    try {
      await this.runc.delete(this.id, true);
    } catch (err) {
      if (!(err instanceof BerthError && err.kind === 'NotFound')) throw err;
    }
    this.deleted = true;
    for (const id of [...this.monitored.keys()]) this.forget(id);
    if (this.mounted) {
      await unmountAll(join(this.bundle, 'rootfs'));
      this.mounted = false;
    }
    rmSync(this.registryPath, { force: true });
    rmSync(join(this.bundle, 'x'), { recursive: true, force: true });
    rmSync(join(this.bundle, 'exits'), { recursive: true, force: true });
    for (const f of [
      'init.pid',
      'init.pid.start',
      'conmon.pid',
      'conmon.pid.start',
      CGROUP_FILE,
      `${CGROUP_FILE}.tmp`,
      TASK_RECORD,
      RUNC_RECORD,
      'exit',
      EXIT_REASON_FILE,
      'exit-reported',
      'oom',
      'attach',
      'ctl',
      'winsz',
    ]) {
      rmSync(join(this.bundle, f), { force: true });
    }
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

  /** Writes one message to a process's conmon ctl FIFO. */
  private ctl(execId: string, type: number, height = 0, width = 0): void {
    const path = join(processDir(this.bundle, execId), 'ctl');
    let fd: number;
    try {
      fd = openSync(path, C.O_WRONLY | C.O_NONBLOCK);
    } catch (err) {
      throw errors.failedPrecondition('shim.no_monitor', `${this.process(execId).label}: its monitor is not listening (${(err as Error).message})`);
    }
    try {
      writeSync(fd, `${type} ${height} ${width}\n`);
    } finally {
      closeSync(fd);
    }
  }

  /** Update: resources (JSON LinuxResources) and/or the reopen-log annotation. */
  async update(resources: Any | undefined, annotations: Record<string, string>): Promise<void> {
    if (annotations[REOPEN_LOG_ANNOTATION]) {
      if (this.init.state !== 'stopped' && this.init.state !== 'deleted') this.ctl('', CTL_REOPEN_LOGS);
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
    if (!p.stdio.terminal) throw errors.failedPrecondition('shim.no_terminal', `${p.label} has no terminal`);
    this.ctl(execId, CTL_RESIZE, height, width);
  }

  closeIO(execId: string): void {
    const m = this.monitored.get(execId);
    this.process(execId);
    m?.bridge?.closeStdin();
  }

  get cgroupIsV1(): boolean {
    return this.cgroup !== undefined && isV1(this.cgroup);
  }

  /** Whether the container still needs the shim (not deleted). */
  get alive(): boolean {
    return this.init.state !== 'deleted';
  }
}

function safeOomCount(c: CgroupLocation): bigint {
  try {
    return oomKillCount(c);
  } catch {
    return 0n;
  }
}

/**
 * How a process's stdio maps onto conmon. CRI containers: conmon writes the CRI log itself
 * (stdout = stderr = file://<log path>, k8s-file) and takes stdin from attach sessions
 * (stdin = attach://stdin). Everything else goes through a bridge.
 */
function stdioPlan(s: StdioSpec, cri: boolean): { logPath?: string; stdin: boolean; stdinOnce: boolean; bridge: boolean } {
  const attach = parseAttachStdin(s.stdin);
  if (cri) {
    const out = parseStdioUri(s.stdout);
    const logPath = out.kind === 'file' ? out.path : undefined;
    if (!attach && s.stdin)
      throw errors.invalidArgument('shim.bad_stdin', `CRI container stdin must be ${JSON.stringify('attach://stdin')}, got ${JSON.stringify(s.stdin)}`);
    if (out.kind === 'fifo' || (s.stderr && s.stderr !== s.stdout)) {
      throw errors.invalidArgument('shim.bad_stdio', 'CRI container output must be one file:// log path for stdout and stderr');
    }
    return { logPath, stdin: !!attach, stdinOnce: attach?.once ?? false, bridge: false };
  }
  if (attach) return { stdin: true, stdinOnce: attach.once, bridge: false };
  Bridge.check(s);
  return { stdin: !!s.stdin, stdinOnce: true, bridge: needsBridge(s) };
}
