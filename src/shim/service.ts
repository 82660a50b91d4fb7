/**
 * containerd.task.v2.Task served by berth-shim: one service instance hosts every container of
 * a namespace (state per container id). Each method is a thin mapping onto Container
 * (container.ts). recover() takes over the containers an earlier shim left (registry under
 * the state dir) and reports their exits.
 */
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { errors } from '../errors.js';
import type { Logger } from '../log.js';
import { packAny, timestamp, EmptyS, type Timestamp } from '../ttrpc/pb.js';
import { method, type LeanMethod } from '../ttrpc/lean-service.js';
import * as T from './task-api.js';
import { Container, type ContainerDeps } from './container.js';
import type { ProcState } from './process.js';
import { Topics } from './events.js';
import { statsV1, statsV2 } from '../cgroup-stats.js';

/** The proto full name the Task service is registered under. */
export const TASK_SERVICE = 'containerd.task.v2.Task';

export const SHIM_VERSION = 'berth-shim 0.1.0';

const EMPTY = EmptyS;

const statusOf: Record<ProcState, number> = {
  created: T.Status.CREATED,
  running: T.Status.RUNNING,
  pausing: T.Status.PAUSING,
  paused: T.Status.PAUSED,
  stopped: T.Status.STOPPED,
  deleted: T.Status.STOPPED,
};

function ts(d: Date | undefined): Timestamp | undefined {
  return d ? timestamp(d) : undefined;
}

export interface TaskServiceOptions extends ContainerDeps {
  /** Called when Shutdown decides the shim should exit. */
  onShutdown: () => void;
  /** Poll interval of inherited monitors. */
  pollMs?: number;
}

export class TaskService {
  readonly containers = new Map<string, Container>();
  /** ids being created right now (reserved so a second Create with the same id fails fast). */
  private readonly creating = new Set<string>();
  private readonly log: Logger;

  private pollTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: TaskServiceOptions) {
    this.log = opts.log;
  }

  /**
   * Takes over the containers of an earlier shim of this namespace (the registry names their
   * bundles), reconnects their bridges and reports exits that happened while no shim ran.
   */
  async recover(): Promise<number> {
    const dir = join(this.opts.stateDir, 'tasks', this.opts.namespace);
    let ids: string[] = [];
    try {
      ids = readdirSync(dir);
    } catch {
      ids = [];
    }
    for (const id of ids) {
      let bundle = '';
      try {
        bundle = readFileSync(join(dir, id), 'utf8').trim();
      } catch {
        continue;
      }
      const c = Container.load(bundle, this.opts);
      if (!c || c.id !== id) {
        this.log.warn('dropping registry entry without a task record', { id, bundle });
        rmSync(join(dir, id), { force: true });
        continue;
      }
      this.containers.set(id, c);
    }
    for (const c of this.containers.values()) {
      await c.takeOver().catch((err: unknown) => this.log.warn('could not resume container', { id: c.id, err }));
    }
    this.startPolling();
    if (this.containers.size) this.log.info('took over containers', { count: this.containers.size });
    return this.containers.size;
  }

  /** Monitors inherited from an earlier shim are not our children: poll them. */
  private startPolling(): void {
    if (this.pollTimer) return;
    this.pollTimer = setInterval(() => {
      let any = false;
      for (const c of this.containers.values()) {
        if (!c.hasAdoptedMonitors) continue;
        any = true;
        c.pollMonitors();
      }
      if (!any) this.stopPolling();
    }, this.opts.pollMs ?? 1000);
    this.pollTimer.unref();
  }

  stopPolling(): void {
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = undefined;
  }

  get(id: string): Container {
    const c = this.containers.get(id);
    if (!c) throw errors.notFound('shim.container_not_found', `container ${id} not found`);
    return c;
  }

  /** Containers not yet deleted. */
  get liveCount(): number {
    return this.containers.size + this.creating.size;
  }

  /** The method table registered with registerLean(server, TASK_SERVICE, …), by proto method name. */
  handlers(): Record<string, LeanMethod> {
    return {
      State: method(T.StateRequestS, T.StateResponseS, async (req: T.IdExecReq) => {
        const c = this.get(req.id);
        const p = c.process(req.execId);
        return {
          id: req.execId || c.id,
          bundle: c.bundle,
          pid: p.pid,
          status: statusOf[p.state],
          stdin: p.stdio.stdin,
          stdout: p.stdio.stdout,
          stderr: p.stdio.stderr,
          terminal: p.stdio.terminal,
          exitStatus: p.exit?.status ?? 0,
          exitedAt: ts(p.exit?.exitedAt),
          execId: req.execId,
        };
      }),

      Create: method(T.CreateTaskRequestS, T.CreateTaskResponseS, async (req: T.CreateTaskRequest) => {
        if (this.containers.has(req.id) || this.creating.has(req.id)) {
          throw errors.alreadyExists('shim.container_exists', `container ${req.id} already exists`);
        }
        this.creating.add(req.id);
        try {
          const c = await Container.create(
            {
              id: req.id,
              bundle: req.bundle,
              rootfs: req.rootfs.map((m) => ({ type: m.type, source: m.source, options: [...m.options] })),
              stdin: req.stdin,
              stdout: req.stdout,
              stderr: req.stderr,
              terminal: req.terminal,
              checkpoint: req.checkpoint,
              options: req.options,
            },
            this.opts,
          );
          this.containers.set(req.id, c);
          this.opts.publisher.publish(Topics.create, T.Ev.TaskCreate, {
            containerId: req.id,
            bundle: c.bundle,
            rootfs: req.rootfs,
            io: { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal },
            checkpoint: req.checkpoint,
            pid: c.init.pid,
          });
          return { pid: c.init.pid };
        } finally {
          this.creating.delete(req.id);
        }
      }),

      Start: method(T.StartRequestS, T.StartResponseS, async (req: T.IdExecReq) => ({ pid: await this.get(req.id).start(req.execId) })),

      Delete: method(T.DeleteRequestS, T.DeleteResponseS, async (req: T.IdExecReq) => {
        if (this.creating.has(req.id)) throw errors.failedPrecondition('shim.creating', `container ${req.id} is still being created`);
        const c = this.get(req.id);
        const r = await c.delete(req.execId);
        if (!req.execId) this.containers.delete(req.id);
        return { pid: r.pid, exitStatus: r.status, exitedAt: ts(r.exitedAt) };
      }),

      Pids: method(T.PidsRequestS, T.PidsResponseS, async (req: T.IdReq) => {
        const list = await this.get(req.id).pids();
        return {
          processes: list.map(({ pid, execId }) => ({
            pid,
            info: execId ? packAny(T.ProcessDetailsS, { execId }) : undefined,
          })),
        };
      }),

      Pause: method(T.PauseRequestS, EMPTY, async (req: T.IdReq) => {
        await this.get(req.id).pause();
        return {};
      }),

      Resume: method(T.ResumeRequestS, EMPTY, async (req: T.IdReq) => {
        await this.get(req.id).resume();
        return {};
      }),

      Checkpoint: method(T.CheckpointTaskRequestS, EMPTY, async (req: T.CheckpointTaskRequest) => {
        await this.get(req.id).checkpoint(req.path, req.options);
        return {};
      }),

      Kill: method(T.KillRequestS, EMPTY, async (req: T.KillRequest) => {
        if (req.signal === 0 || req.signal > 64) throw errors.invalidArgument('shim.bad_signal', `invalid signal ${req.signal}`);
        await this.get(req.id).kill(req.execId, req.signal, req.all);
        return {};
      }),

      Exec: method(T.ExecProcessRequestS, EMPTY, async (req: T.ExecProcessRequest) => {
        if (!req.execId) throw errors.invalidArgument('shim.bad_exec', 'exec id is required');
        this.get(req.id).addExec(req.execId, { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal }, req.spec);
        return {};
      }),

      ResizePty: method(T.ResizePtyRequestS, EMPTY, async (req: T.ResizePtyRequest) => {
        this.get(req.id).resizePty(req.execId, req.width, req.height);
        return {};
      }),

      CloseIO: method(T.CloseIORequestS, EMPTY, async (req: T.CloseIORequest) => {
        if (req.stdin) this.get(req.id).closeIO(req.execId);
        return {};
      }),

      Update: method(T.UpdateTaskRequestS, EMPTY, async (req: T.UpdateTaskRequest) => {
        await this.get(req.id).update(req.resources, req.annotations);
        return {};
      }),

      Wait: method(T.WaitRequestS, T.WaitResponseS, async (req: T.IdExecReq, ctx) => {
        const p = this.get(req.id).process(req.execId);
        const e = await p.wait(ctx.signal);
        return { exitStatus: e.status, exitedAt: ts(e.exitedAt) };
      }),

      Stats: method(T.StatsRequestS, T.StatsResponseS, async (req: T.IdReq) => {
        const c = this.get(req.id);
        if (!c.cgroup) throw errors.failedPrecondition('shim.no_cgroup', `container ${req.id} has no cgroup`);
        if (c.cgroupIsV1) return { stats: packAny(T.V1MetricsS, statsV1(c.cgroup)) };
        return { stats: packAny(T.V2MetricsS, statsV2(c.cgroup)) };
      }),

      Connect: method(T.ConnectRequestS, T.ConnectResponseS, async (req: T.IdReq) => {
        const c = this.containers.get(req.id);
        return { shimPid: process.pid, taskPid: c?.init.pid ?? 0, version: SHIM_VERSION };
      }),

      Shutdown: method(T.ShutdownRequestS, EMPTY, async (req: T.ShutdownRequest) => {
        if (req.now || this.liveCount === 0) {
          this.log.info('shutdown requested', { now: req.now, containers: this.liveCount });
          // Reply first; exit on the next turn so the response is written.
          setImmediate(() => this.opts.onShutdown());
        }
        return {};
      }),
    };
  }
}
