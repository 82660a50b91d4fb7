/**
 * A task layer in memory (the TaskPort of RuntimeContext): tasks are created, started, killed,
 * waited for and deleted as TaskManager would, with no shim or runc. `ignore` makes a task
 * outlive some signals (a trap for SIGTERM, a process stuck in the kernel for SIGKILL), so
 * grace and kill-wait timers decide.
 */
import { EventEmitter } from 'node:events';
import { errors } from '../../../src/errors.js';
import type { TaskPort } from '../../../src/cri/server/ports.js';
import type { CreateTaskOptions, ExitStatus, TaskEvents, TaskState } from '../../../src/runtime/types.js';
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

export class FakeTasks extends EventEmitter<TaskEvents> implements TaskPort {
  readonly tasks = new Map<string, FakeTask>();
  /** Task id → signals its process ignores. */
  readonly ignore = new Map<string, number[]>();
  private nextPid = 1000;
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

  async start(ns: string, id: string): Promise<number> {
    await this.faults.hit('tasks.start');
    const t = this.get(ns, id);
    t.status = 'running';
    return t.pid;
  }

  async kill(ns: string, id: string, signal: number): Promise<void> {
    await this.faults.hit('tasks.kill');
    const t = this.get(ns, id);
    // A created task's process exists too (runc kill works on it).
    if (t.status === 'stopped') throw errors.failedPrecondition('runtime.task_exited', `task ${id} has exited`);
    t.signals.push(signal);
    if (!this.ignore.get(id)?.includes(signal)) this.exit(ns, id, 128 + signal);
  }

  async wait(ns: string, id: string): Promise<ExitStatus> {
    const t = this.get(ns, id);
    if (t.exit) return t.exit;
    return new Promise((r) => t.waiters.push(r));
  }

  async delete(ns: string, id: string): Promise<ExitStatus & { pid: number }> {
    await this.faults.hit('tasks.delete');
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
    throw errors.unimplemented('fake.unsupported', `the fake task layer does not do ${what}`);
  }
  async exec(): Promise<void> {
    this.unsupported('exec');
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
  async checkpoint(): Promise<void> {
    this.unsupported('checkpoint');
  }
}
