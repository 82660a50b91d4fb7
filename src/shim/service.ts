/**
 * containerd.task.v2.Task served by berth-shim: one service instance hosts many containers
 * (state per container id). Each method is a thin mapping onto Container (container.ts).
 */
import { create, toBinary } from '@bufbuild/protobuf';
import { timestampFromDate, AnySchema, type Timestamp } from '@bufbuild/protobuf/wkt';
import { errors } from '../errors.js';
import type { Logger } from '../log.js';
import type { ServiceImpl } from '../ttrpc/index.js';
import type { Task } from '../api/containerd/runtime/v2/task/shim_pb.js';
import type { GenService, GenServiceMethods } from '@bufbuild/protobuf/codegenv2';
import { Status } from '../api/containerd/types/task/task_pb.js';
import { ProcessDetailsSchema } from '../api/containerd/runc/options/oci_pb.js';
import * as Ev from '../api/containerd/events/task_pb.js';
import { Container, type ContainerDeps } from './container.js';
import type { ProcState } from './process.js';
import { Topics } from './events.js';
import { statsV1, statsV2 } from './cgroup.js';
import * as V1 from '../api/cgroups/stats/v1/metrics_pb.js';
import * as V2 from '../api/cgroups/cgroup2/stats/metrics_pb.js';

export const SHIM_VERSION = 'berth-shim 0.1.0';

type TaskDef = typeof Task extends GenService<infer S extends GenServiceMethods> ? S : never;

const statusOf: Record<ProcState, Status> = {
  created: Status.CREATED,
  running: Status.RUNNING,
  pausing: Status.PAUSING,
  paused: Status.PAUSED,
  stopped: Status.STOPPED,
  deleted: Status.STOPPED,
};

function ts(d: Date | undefined): Timestamp | undefined {
  return d ? timestampFromDate(d) : undefined;
}

export interface TaskServiceOptions extends ContainerDeps {
  /** Called when Shutdown decides the shim should exit. */
  onShutdown: () => void;
}

export class TaskService {
  readonly containers = new Map<string, Container>();
  /** ids being created right now (reserved so a second Create with the same id fails fast). */
  private readonly creating = new Set<string>();
  private readonly log: Logger;

  constructor(private readonly opts: TaskServiceOptions) {
    this.log = opts.log;
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

  /** The handler table registered with registerService(server, Task, …). */
  handlers(): ServiceImpl<TaskDef> {
    return {
      state: async (req) => {
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
      },

      create: async (req) => {
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
          this.opts.publisher.publish(
            Topics.create,
            Ev.TaskCreateSchema,
            create(Ev.TaskCreateSchema, {
              containerId: req.id,
              bundle: c.bundle,
              rootfs: req.rootfs,
              io: { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal },
              checkpoint: req.checkpoint,
              pid: c.init.pid,
            }),
          );
          return { pid: c.init.pid };
        } finally {
          this.creating.delete(req.id);
        }
      },

      start: async (req) => ({ pid: await this.get(req.id).start(req.execId) }),

      delete: async (req) => {
        const c = this.get(req.id);
        const r = await c.delete(req.execId);
        if (!req.execId) this.containers.delete(req.id);
        return { pid: r.pid, exitStatus: r.status, exitedAt: ts(r.exitedAt) };
      },

      pids: async (req) => {
        const list = await this.get(req.id).pids();
        return {
          processes: list.map(({ pid, execId }) => ({
            pid,
            info: execId
              ? create(AnySchema, { typeUrl: ProcessDetailsSchema.typeName, value: toBinary(ProcessDetailsSchema, create(ProcessDetailsSchema, { execId })) })
              : undefined,
          })),
        };
      },

      pause: async (req) => {
        await this.get(req.id).pause();
        return {};
      },

      resume: async (req) => {
        await this.get(req.id).resume();
        return {};
      },

      checkpoint: async (req) => {
        await this.get(req.id).checkpoint(req.path, req.options);
        return {};
      },

      kill: async (req) => {
        if (req.signal === 0 || req.signal > 64) throw errors.invalidArgument('shim.bad_signal', `invalid signal ${req.signal}`);
        await this.get(req.id).kill(req.execId, req.signal, req.all);
        return {};
      },

      exec: async (req) => {
        if (!req.execId) throw errors.invalidArgument('shim.bad_exec', 'exec id is required');
        this.get(req.id).addExec(req.execId, { stdin: req.stdin, stdout: req.stdout, stderr: req.stderr, terminal: req.terminal }, req.spec);
        return {};
      },

      resizePty: async (req) => {
        this.get(req.id).resizePty(req.execId, req.width, req.height);
        return {};
      },

      closeIO: async (req) => {
        if (req.stdin) this.get(req.id).closeIO(req.execId);
        return {};
      },

      update: async (req) => {
        await this.get(req.id).update(req.resources, req.annotations);
        return {};
      },

      wait: async (req, ctx) => {
        const p = this.get(req.id).process(req.execId);
        const e = await p.wait(ctx.signal);
        return { exitStatus: e.status, exitedAt: ts(e.exitedAt) };
      },

      stats: async (req) => {
        const c = this.get(req.id);
        if (!c.cgroup) throw errors.failedPrecondition('shim.no_cgroup', `container ${req.id} has no cgroup`);
        if (c.cgroupIsV1) {
          const m = statsV1(c.cgroup);
          return { stats: create(AnySchema, { typeUrl: V1.MetricsSchema.typeName, value: toBinary(V1.MetricsSchema, m) }) };
        }
        const m = statsV2(c.cgroup);
        return { stats: create(AnySchema, { typeUrl: V2.MetricsSchema.typeName, value: toBinary(V2.MetricsSchema, m) }) };
      },

      connect: async (req) => {
        const c = this.containers.get(req.id);
        return { shimPid: process.pid, taskPid: c?.init.pid ?? 0, version: SHIM_VERSION };
      },

      shutdown: async (req) => {
        if (req.now || this.liveCount === 0) {
          this.log.info('shutdown requested', { now: req.now, containers: this.liveCount });
          // Reply first; exit on the next turn so the response is written.
          setImmediate(() => this.opts.onShutdown());
        }
        return {};
      },
    };
  }
}
