/**
 * The shim v2 wire API as the shim speaks it, on the lean codec (ttrpc/pb.ts): the Task
 * service's messages, the task events it publishes, runc options and the cgroup metrics Stats
 * returns. Every table and message type here is generated from the .proto files by
 * scripts/protoc-gen-lean.ts (`npm run gen` → src/api/shim_lean.ts, one namespace per proto
 * package); this module only picks and names them for the shim.
 * test/unit/shim-task-api.test.ts checks the generated tables against the protobuf-es
 * descriptors generated from the same files.
 *
 * The shim never loads protobuf-es: that is what keeps a shim process near Node's own floor.
 */
import { containerd, io } from '../api/shim_lean.js';

import Task = containerd.task.v2;
import Runc = containerd.runc.v1;
import TaskEvents = containerd.events;

// --- Task service (containerd.task.v2) ---------------------------------------------------------

export const {
  CreateTaskRequestS,
  CreateTaskResponseS,
  DeleteRequestS,
  DeleteResponseS,
  ExecProcessRequestS,
  ResizePtyRequestS,
  StateRequestS,
  StateResponseS,
  KillRequestS,
  CloseIORequestS,
  PidsRequestS,
  PidsResponseS,
  CheckpointTaskRequestS,
  UpdateTaskRequestS,
  StartRequestS,
  StartResponseS,
  WaitRequestS,
  WaitResponseS,
  StatsRequestS,
  StatsResponseS,
  ConnectRequestS,
  ConnectResponseS,
  ShutdownRequestS,
  PauseRequestS,
  ResumeRequestS,
} = Task;

export type CreateTaskRequest = Task.CreateTaskRequest;
export type ExecProcessRequest = Task.ExecProcessRequest;
export type ResizePtyRequest = Task.ResizePtyRequest;
export type KillRequest = Task.KillRequest;
export type CloseIORequest = Task.CloseIORequest;
export type CheckpointTaskRequest = Task.CheckpointTaskRequest;
export type UpdateTaskRequest = Task.UpdateTaskRequest;
export type ShutdownRequest = Task.ShutdownRequest;
export type StateResponse = Task.StateResponse;
/** The request shape that only names a task (Pids, Pause, Resume, Stats, Connect). */
export type IdReq = Pick<Task.PidsRequest, 'id'>;
/** The request shape that names a task and optionally one of its execs (State, Start, Delete, Wait). */
export type IdExecReq = Pick<Task.StateRequest, 'id' | 'execId'>;

// --- shared types --------------------------------------------------------------------------------

export const { MountS } = containerd.types;
export type Mount = containerd.types.Mount;
/** containerd.v1.types.Status, the task status State reports. */
export const { Status, ProcessInfoS } = containerd.v1.types;

// --- runc options (containerd.runc.v1) ---------------------------------------------------------

export const { OptionsS, CheckpointOptionsS, ProcessDetailsS } = Runc;
export type Options = Runc.Options;
export type CheckpointOptions = Runc.CheckpointOptions;

// --- task events (containerd.events) and their ttrpc Forward request ---------------------------

/** The task events a shim publishes, keyed by message name (topics are in events.ts). */
export const Ev = {
  TaskCreate: TaskEvents.TaskCreateS,
  TaskStart: TaskEvents.TaskStartS,
  TaskDelete: TaskEvents.TaskDeleteS,
  TaskExit: TaskEvents.TaskExitS,
  TaskOOM: TaskEvents.TaskOOMS,
  TaskExecAdded: TaskEvents.TaskExecAddedS,
  TaskExecStarted: TaskEvents.TaskExecStartedS,
  TaskPaused: TaskEvents.TaskPausedS,
  TaskResumed: TaskEvents.TaskResumedS,
  TaskCheckpointed: TaskEvents.TaskCheckpointedS,
} as const;

export const { ForwardRequestS } = containerd.services.events.ttrpc.v1;

// --- cgroup metrics (io.containerd.cgroups.v1 / v2) --------------------------------------------

export const V1MetricsS = io.containerd.cgroups.v1.MetricsS;
export const V2MetricsS = io.containerd.cgroups.v2.MetricsS;
export type V1Metrics = io.containerd.cgroups.v1.Metrics;
export type V2Metrics = io.containerd.cgroups.v2.Metrics;

export type { Any, Timestamp } from '../ttrpc/pb.js';
