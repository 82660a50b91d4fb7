/**
 * Public types of the daemon-side task layer: runtime handlers, task requests and the typed
 * events berthd's CRI layer listens to.
 */
import type { Mount } from '../core/snapshots/types.js';

export type { Mount };

/** Shim type of berth's own shim (`containerd-shim-berth-v1`). */
export const BERTH_SHIM_TYPE = 'io.containerd.berth.v1';
/** Debian's / containerd's runc shim. */
export const RUNC_SHIM_TYPE = 'io.containerd.runc.v2';

/** One runtime handler (a Kubernetes RuntimeClass handler name maps to one of these). */
export interface RuntimeHandler {
  /** `io.containerd.<name>.<version>` → binary `containerd-shim-<name>-<version>` on PATH. */
  type: string;
  /** Absolute path of the shim binary (overrides the PATH lookup). */
  shim?: string;
  /** OCI runtime binary given to the shim as runc Options.binary_name. */
  binary?: string;
  /** OCI runtime state root given as runc Options.root. */
  root?: string;
  systemdCgroup?: boolean;
}

export interface CreateTaskOptions {
  namespace: string;
  id: string;
  /** The OCI runtime spec, written verbatim to <bundle>/config.json. */
  spec: Record<string, unknown>;
  /** Mounts that make up the rootfs; empty means the caller filled <bundle>/rootfs itself. */
  rootfs?: Mount[];
  /** Runtime handler name (key of the handlers config). */
  runtime: string;
  /**
   * Group key: containers with the same key share one shim. Default: the spec's
   * io.kubernetes.cri.sandbox-id annotation, else the container id.
   */
  groupKey?: string;
  stdin?: string;
  stdout?: string;
  stderr?: string;
  terminal?: boolean;
}

export interface ExecOptions {
  stdin?: string;
  stdout?: string;
  stderr?: string;
  terminal?: boolean;
}

export interface ExitStatus {
  exitStatus: number;
  exitedAt: Date;
  /** Set when the exit was synthesized by berthd (e.g. "shim died"). */
  reason?: string;
}

export type TaskStatus = 'unknown' | 'created' | 'running' | 'stopped' | 'paused' | 'pausing';

export interface TaskState {
  id: string;
  execId: string;
  bundle: string;
  pid: number;
  status: TaskStatus;
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
  exitStatus: number;
  exitedAt?: Date;
  /** Set when berthd knows the task only from its bundle (shim gone). */
  reason?: string;
}

export interface ProcessInfo {
  pid: number;
  /** Exec id when the shim reports one (runc ProcessDetails). */
  execId?: string;
}

export interface TaskRef {
  namespace: string;
  containerId: string;
}

export interface ExitEvent extends TaskRef {
  /** Exec id, or '' for the init process. */
  id: string;
  pid: number;
  exitStatus: number;
  exitedAt: Date;
  reason?: string;
}
export interface CreateEvent extends TaskRef {
  pid: number;
  bundle: string;
}
export interface StartEvent extends TaskRef {
  pid: number;
}
export interface DeleteEvent extends TaskRef {
  id: string;
  pid: number;
  exitStatus: number;
  exitedAt?: Date;
}
export interface ExecAddedEvent extends TaskRef {
  execId: string;
}
export interface ExecStartedEvent extends TaskRef {
  execId: string;
  pid: number;
}
export interface CheckpointedEvent extends TaskRef {
  checkpoint: string;
}

/** Typed event map of TaskManager / EventReceiver. */
export interface TaskEvents {
  exit: [ExitEvent];
  oom: [TaskRef];
  create: [CreateEvent];
  start: [StartEvent];
  delete: [DeleteEvent];
  execAdded: [ExecAddedEvent];
  execStarted: [ExecStartedEvent];
  paused: [TaskRef];
  resumed: [TaskRef];
  checkpointed: [CheckpointedEvent];
}

/** What init() found for each bundle on disk. */
export interface RecoveredTask {
  namespace: string;
  id: string;
  runtime: string;
  /** Task state from the shim, or a synthesized stopped state when the shim is gone. */
  state: TaskState;
}
