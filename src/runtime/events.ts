/**
 * Event receiver: berthd's side of containerd.services.events.ttrpc.v1.Events/Forward, the
 * endpoint shims publish to (TTRPC_ADDRESS). Envelopes carrying containerd.events.Task* are
 * decoded into typed events; other topics are counted and dropped.
 */
import { EventEmitter } from 'node:events';
import { dirname } from 'node:path';
import { fromBinary, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import { timestampDate, type Any, type Timestamp } from '@bufbuild/protobuf/wkt';
import { TtrpcServer, registerService, ensurePrivateDir } from '../ttrpc/index.js';
import { Events } from '../api/containerd/services/ttrpc/events/v1/events_pb.js';
import * as Ev from '../api/containerd/events/task_pb.js';
import type { Logger } from '../log.js';
import type { TaskEvents } from './types.js';

function ts(t: Timestamp | undefined): Date {
  return t ? timestampDate(t) : new Date();
}

function unpack<D extends DescMessage>(any: Any, schema: D): MessageShape<D> | undefined {
  // containerd uses the bare full name; accept the type.googleapis.com/ form too.
  const name = any.typeUrl.slice(any.typeUrl.lastIndexOf('/') + 1);
  if (name !== schema.typeName) return undefined;
  return fromBinary(schema, any.value);
}

type Emit = <K extends keyof TaskEvents>(name: K, ...args: TaskEvents[K]) => void;

/** Decodes one envelope and emits the matching typed event; false when not a task event. */
export function dispatchEnvelope(namespace: string, topic: string, any: Any, emit: Emit): boolean {
  switch (topic) {
    case '/tasks/exit': {
      const m = unpack(any, Ev.TaskExitSchema);
      if (!m) return false;
      // containerd's TaskExit.id is the exec id, or the container id for the init process.
      const id = m.id === m.containerId ? '' : m.id;
      emit('exit', { namespace, containerId: m.containerId, id, pid: m.pid, exitStatus: m.exitStatus, exitedAt: ts(m.exitedAt) });
      return true;
    }
    case '/tasks/oom': {
      const m = unpack(any, Ev.TaskOOMSchema);
      if (!m) return false;
      emit('oom', { namespace, containerId: m.containerId });
      return true;
    }
    case '/tasks/create': {
      const m = unpack(any, Ev.TaskCreateSchema);
      if (!m) return false;
      emit('create', { namespace, containerId: m.containerId, pid: m.pid, bundle: m.bundle });
      return true;
    }
    case '/tasks/start': {
      const m = unpack(any, Ev.TaskStartSchema);
      if (!m) return false;
      emit('start', { namespace, containerId: m.containerId, pid: m.pid });
      return true;
    }
    case '/tasks/delete': {
      const m = unpack(any, Ev.TaskDeleteSchema);
      if (!m) return false;
      const id = m.id === m.containerId ? '' : m.id;
      emit('delete', { namespace, containerId: m.containerId, id, pid: m.pid, exitStatus: m.exitStatus, exitedAt: m.exitedAt ? ts(m.exitedAt) : undefined });
      return true;
    }
    case '/tasks/exec-added': {
      const m = unpack(any, Ev.TaskExecAddedSchema);
      if (!m) return false;
      emit('execAdded', { namespace, containerId: m.containerId, execId: m.execId });
      return true;
    }
    case '/tasks/exec-started': {
      const m = unpack(any, Ev.TaskExecStartedSchema);
      if (!m) return false;
      emit('execStarted', { namespace, containerId: m.containerId, execId: m.execId, pid: m.pid });
      return true;
    }
    case '/tasks/paused': {
      const m = unpack(any, Ev.TaskPausedSchema);
      if (!m) return false;
      emit('paused', { namespace, containerId: m.containerId });
      return true;
    }
    case '/tasks/resumed': {
      const m = unpack(any, Ev.TaskResumedSchema);
      if (!m) return false;
      emit('resumed', { namespace, containerId: m.containerId });
      return true;
    }
    case '/tasks/checkpointed': {
      const m = unpack(any, Ev.TaskCheckpointedSchema);
      if (!m) return false;
      emit('checkpointed', { namespace, containerId: m.containerId, checkpoint: m.checkpoint });
      return true;
    }
    default:
      return false;
  }
}

/** Serves Events/Forward on a unix socket (in a 0700 directory) and emits typed events. */
export class EventReceiver extends EventEmitter<TaskEvents> {
  private readonly server: TtrpcServer;
  /** Envelopes that were not task events or failed to decode. */
  dropped = 0;

  constructor(
    readonly socketPath: string,
    private readonly log: Logger,
  ) {
    super();
    this.server = new TtrpcServer({ logger: log });
    registerService(this.server, Events, {
      forward: (req) => {
        const e = req.envelope;
        if (!e?.event) return {};
        try {
          if (!dispatchEnvelope(e.namespace, e.topic, e.event, (n, ...a) => (this.emit as (n: string, ...a: unknown[]) => boolean)(n, ...a))) this.dropped++;
        } catch (err) {
          this.dropped++;
          this.log.warn('undecodable event', { topic: e.topic, typeUrl: e.event.typeUrl, err });
        }
        return {};
      },
    });
  }

  async listen(): Promise<void> {
    await ensurePrivateDir(dirname(this.socketPath));
    await this.server.listen({ path: this.socketPath, mode: 0o600 });
  }

  async close(): Promise<void> {
    await this.server.shutdown();
  }
}
