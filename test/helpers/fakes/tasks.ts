/**
 * A task layer in memory (the TaskPort of RuntimeContext): tasks are created, started, killed,
 * waited for and deleted as TaskManager would, with no shim or runc. `ignore` makes a task
 * outlive some signals (a trap for SIGTERM, a process stuck in the kernel for SIGKILL), so
 * grace and kill-wait timers decide.
 *
 * Exec processes (exec, then start/wait/kill/delete with an exec id) follow `execScript`: what
 * the command writes to the stdio FIFOs berthd made (opened and written as a shim would) and
 * whether it exits by itself or runs until killed. Their pids lie above the kernel's
 * PID_MAX_LIMIT (2^22), so berthd's kill of an exec's process tree (which reads /proc for
 * descendants) can never reach a real process. Checkpoint writes a CRIU-like image file, or
 * waits while a test holds `tasks.checkpoint`.
 */
import { EventEmitter } from 'node:events';
import { closeSync, constants as C, openSync, writeSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { errors } from '../../../src/errors.js';
import type { TaskPort } from '../../../src/cri/server/ports.js';
import type { CreateTaskOptions, ExecOptions, ExitStatus, TaskEvents, TaskState } from '../../../src/runtime/types.js';
import type { Faults } from './faults.js';

interface FakeTask {
  namespace: string;
  id: string;
  runtime: string;
  status: 'created' | 'running' | 'stopped';
  pid: number;
  exit?: ExitStatus;
  waiters: Array<(e: ExitStatus) => void>;
  signals: number[];
}

/** What an exec'd command does: its output, and its exit code (undefined: runs until killed). */
export interface ExecBehaviour {
  stdout?: string;
  stderr?: string;
  exitCode?: number;
}

export interface FakeExec {
  containerId: string;
  execId: string;
  args: string[];
  io: ExecOptions;
  status: 'created' | 'running' | 'stopped';
  pid: number;
  exit?: ExitStatus;
  waiters: Array<(e: ExitStatus) => void>;
  signals: number[];
  /** Write ends of the output FIFOs, held while the process runs. */
  fds: number[];
}

/** Above PID_MAX_LIMIT (4194304): no process of the host ever has these pids. */
const FAKE_EXEC_PID_BASE = 4_194_305;

export class FakeTasks extends EventEmitter<TaskEvents> implements TaskPort {
  readonly tasks = new Map<string, FakeTask>();
  /** Task id → signals its process ignores. */
  readonly ignore = new Map<string, number[]>();
  /** `ns/containerId/execId` → exec process (until deleted). */
  readonly execs = new Map<string, FakeExec>();
  /** What an exec'd command does; by default it prints nothing and exits 0. */
  execScript: (args: string[]) => ExecBehaviour = () => ({ exitCode: 0 });
  /** Every checkpoint asked for: container id and image path. */
  readonly checkpoints: Array<{ id: string; path: string }> = [];
  private nextPid = 1000;
  private nextExecPid = FAKE_EXEC_PID_BASE;
  constructor(private readonly faults: Faults) {
    super();
  }

  private get(ns: string, id: string): FakeTask {
    const t = this.tasks.get(`${ns}/${id}`);
    if (!t) throw errors.notFound('runtime.task_not_found', `task ${id} not found in namespace ${ns}`);
    return t;
  }

  /** The process exits (as a shim would report it). */
  exit(ns: string, id: string, exitStatus: number): void {
    const t = this.get(ns, id);
    if (t.status === 'stopped') return;
    t.status = 'stopped';
    t.exit = { exitStatus, exitedAt: new Date() };
    for (const w of t.waiters.splice(0)) w(t.exit);
    this.emit('exit', { namespace: ns, containerId: id, id: '', pid: t.pid, exitStatus, exitedAt: t.exit.exitedAt });
  }

  signalsOf(ns: string, id: string): number[] {
    return this.get(ns, id).signals;
  }

  async create(o: CreateTaskOptions): Promise<{ pid: number }> {
    await this.faults.hit('tasks.create');
    const k = `${o.namespace}/${o.id}`;
    if (this.tasks.has(k)) throw errors.alreadyExists('runtime.task_exists', `task ${o.id} already exists`);
    this.tasks.set(k, { namespace: o.namespace, id: o.id, runtime: o.runtime, status: 'created', pid: this.nextPid++, waiters: [], signals: [] });
    return { pid: this.get(o.namespace, o.id).pid };
  }

  private getExec(ns: string, id: string, execId: string): FakeExec {
    const e = this.execs.get(`${ns}/${id}/${execId}`);
    if (!e) throw errors.notFound('runtime.task_not_found', `exec ${execId} of task ${id} not found in namespace ${ns}`);
    return e;
  }

  /** The exec'd process exits: its output FIFOs close (the reader sees EOF), waiters learn the code. */
  execExit(ns: string, id: string, execId: string, exitStatus: number): void {
    const e = this.getExec(ns, id, execId);
    if (e.status === 'stopped') return;
    e.status = 'stopped';
    for (const fd of e.fds.splice(0)) closeSync(fd);
    e.exit = { exitStatus, exitedAt: new Date() };
    for (const w of e.waiters.splice(0)) w(e.exit);
  }

  async exec(ns: string, id: string, execId: string, processSpec: Record<string, unknown>, io: ExecOptions = {}): Promise<void> {
    await this.faults.hit('tasks.exec');
    if (this.get(ns, id).status !== 'running') throw errors.failedPrecondition('runtime.task_exited', `task ${id} is not running`);
    const k = `${ns}/${id}/${execId}`;
    if (this.execs.has(k)) throw errors.alreadyExists('runtime.task_exists', `exec ${execId} already exists`);
    const args = Array.isArray(processSpec['args']) ? (processSpec['args'] as string[]) : [];
    this.execs.set(k, { containerId: id, execId, args, io, status: 'created', pid: 0, waiters: [], signals: [], fds: [] });
  }

  async start(ns: string, id: string, execId = ''): Promise<number> {
    await this.faults.hit('tasks.start');
    if (execId) return this.startExec(ns, id, execId);
    const t = this.get(ns, id);
    t.status = 'running';
    return t.pid;
  }

  private startExec(ns: string, id: string, execId: string): number {
    const e = this.getExec(ns, id, execId);
    e.status = 'running';
    e.pid = this.nextExecPid++;
    const b = this.execScript(e.args);
    // As a shim: open the write ends berthd's readers wait on, write, hold them while running.
    for (const [path, text] of [
      [e.io.stdout, b.stdout],
      [e.io.stderr, b.stderr],
    ] as const) {
      if (!path) continue;
      const fd = openSync(path, C.O_WRONLY | C.O_NONBLOCK);
      e.fds.push(fd);
      if (text) writeSync(fd, text);
    }
    if (b.exitCode !== undefined) this.execExit(ns, id, execId, b.exitCode);
    return e.pid;
  }

  /** The exec processes of a container, in the order they were made. */
  execsOf(ns: string, id: string): FakeExec[] {
    return [...this.execs.entries()].filter(([k]) => k.startsWith(`${ns}/${id}/`)).map(([, e]) => e);
  }

  async kill(ns: string, id: string, signal: number, opts: { all?: boolean; execId?: string } = {}): Promise<void> {
    await this.faults.hit('tasks.kill');
    if (opts.execId) {
      const e = this.getExec(ns, id, opts.execId);
      if (e.status === 'stopped') throw errors.failedPrecondition('runtime.task_exited', `exec ${opts.execId} has exited`);
      e.signals.push(signal);
      if (!this.ignore.get(opts.execId)?.includes(signal)) this.execExit(ns, id, opts.execId, 128 + signal);
      return;
    }
    const t = this.get(ns, id);
    // A created task's process exists too (runc kill works on it).
    if (t.status === 'stopped') throw errors.failedPrecondition('runtime.task_exited', `task ${id} has exited`);
    t.signals.push(signal);
    if (!this.ignore.get(id)?.includes(signal)) this.exit(ns, id, 128 + signal);
  }

  async wait(ns: string, id: string, execId = ''): Promise<ExitStatus> {
    const t = execId ? this.getExec(ns, id, execId) : this.get(ns, id);
    if (t.exit) return t.exit;
    return new Promise((r) => t.waiters.push(r));
  }

  async delete(ns: string, id: string, execId = ''): Promise<ExitStatus & { pid: number }> {
    await this.faults.hit('tasks.delete');
    if (execId) {
      const e = this.getExec(ns, id, execId);
      if (e.status === 'running') throw new Error(`the fake task layer refuses to delete exec ${execId} while it runs (as a shim does)`);
      for (const fd of e.fds.splice(0)) closeSync(fd);
      this.execs.delete(`${ns}/${id}/${execId}`);
      return { ...(e.exit ?? { exitStatus: 0, exitedAt: new Date() }), pid: e.pid };
    }
    const t = this.get(ns, id);
    this.tasks.delete(`${ns}/${id}`);
    return { ...(t.exit ?? { exitStatus: 0, exitedAt: new Date() }), pid: t.pid };
  }

  list(): Array<{ namespace: string; id: string; runtime: string; exited: boolean }> {
    return [...this.tasks.values()].map((t) => ({ namespace: t.namespace, id: t.id, runtime: t.runtime, exited: t.status === 'stopped' }));
  }

  async state(ns: string, id: string): Promise<TaskState> {
    const t = this.get(ns, id);
    return {
      id,
      execId: '',
      bundle: '',
      pid: t.pid,
      status: t.status,
      stdin: '',
      stdout: '',
      stderr: '',
      terminal: false,
      exitStatus: t.exit?.exitStatus ?? 0,
      exitedAt: t.exit?.exitedAt,
    };
  }

  shimOf(): { pid: number | undefined; address: string } | undefined {
    return undefined;
  }

  private unsupported(what: string): never {
    throw new Error(`the fake task layer does not do ${what}`);
  }
  async closeIO(): Promise<void> {
    this.unsupported('closeIO');
  }
  async resizePty(): Promise<void> {
    this.unsupported('resizePty');
  }
  async stats(): Promise<never> {
    this.unsupported('stats');
  }
  async update(): Promise<void> {
    this.unsupported('update');
  }
  async checkpoint(ns: string, id: string, path: string): Promise<void> {
    this.checkpoints.push({ id, path });
    await this.faults.hit('tasks.checkpoint');
    if (this.get(ns, id).status !== 'running') throw errors.failedPrecondition('runtime.task_exited', `task ${id} is not running`);
    // What CRIU leaves in the image dir, in miniature.
    await mkdir(path, { recursive: true });
    await writeFile(join(path, 'inventory.img'), 'fake criu image\n');
  }
}
