/**
 * The shim v2 wire API as the shim speaks it, on the lean codec (ttrpc/pb.ts): the Task
 * service's messages (proto/containerd/runtime/v2/task/shim.proto), the task events it
 * publishes (proto/containerd/events/task.proto), runc options, and the cgroup metrics Stats
 * returns. Field numbers come from those .proto files; test/unit/shim-task-api.test.ts checks
 * every table against the protobuf-es code generated from them.
 *
 * The shim never loads protobuf-es: that is what keeps a shim process near Node's own floor.
 */
import { schema, AnyS, TimestampS, type Any, type Schema, type Timestamp } from '../ttrpc/pb.js';

// --- shared types ------------------------------------------------------------------------------

export const MountS = schema('containerd.types.Mount', [
  [1, 'type', 'string'],
  [2, 'source', 'string'],
  [3, 'target', 'string'],
  [4, 'options', 'string', 'repeated'],
]);
export interface Mount {
  type: string;
  source: string;
  target: string;
  options: string[];
}

/** containerd.v1.types.Status */
export const Status = { UNKNOWN: 0, CREATED: 1, RUNNING: 2, STOPPED: 3, PAUSED: 4, PAUSING: 5 } as const;

const ProcessInfoS = schema('containerd.v1.types.ProcessInfo', [
  [1, 'pid', 'uint32'],
  [2, 'info', AnyS],
]);

// --- Task service: requests ---------------------------------------------------------------------

const IdExec = [
  [1, 'id', 'string'],
  [2, 'execId', 'string'],
] as const;
const IdOnly = [[1, 'id', 'string']] as const;

export interface IdReq {
  id: string;
}
export interface IdExecReq extends IdReq {
  execId: string;
}
export interface CreateTaskRequest {
  id: string;
  bundle: string;
  rootfs: Mount[];
  terminal: boolean;
  stdin: string;
  stdout: string;
  stderr: string;
  checkpoint: string;
  parentCheckpoint: string;
  options: Any | undefined;
}
export interface ExecProcessRequest extends IdExecReq {
  terminal: boolean;
  stdin: string;
  stdout: string;
  stderr: string;
  spec: Any | undefined;
}
export interface ResizePtyRequest extends IdExecReq {
  width: number;
  height: number;
}
export interface KillRequest extends IdExecReq {
  signal: number;
  all: boolean;
}
export interface CloseIORequest extends IdExecReq {
  stdin: boolean;
}
export interface CheckpointTaskRequest extends IdReq {
  path: string;
  options: Any | undefined;
}
export interface UpdateTaskRequest extends IdReq {
  resources: Any | undefined;
  annotations: Record<string, string>;
}
export interface ShutdownRequest extends IdReq {
  now: boolean;
}

export const CreateTaskRequestS = schema('containerd.task.v2.CreateTaskRequest', [
  [1, 'id', 'string'],
  [2, 'bundle', 'string'],
  [3, 'rootfs', MountS, 'repeated'],
  [4, 'terminal', 'bool'],
  [5, 'stdin', 'string'],
  [6, 'stdout', 'string'],
  [7, 'stderr', 'string'],
  [8, 'checkpoint', 'string'],
  [9, 'parentCheckpoint', 'string'],
  [10, 'options', AnyS],
]);
export const DeleteRequestS = schema('containerd.task.v2.DeleteRequest', IdExec);
export const ExecProcessRequestS = schema('containerd.task.v2.ExecProcessRequest', [
  ...IdExec,
  [3, 'terminal', 'bool'],
  [4, 'stdin', 'string'],
  [5, 'stdout', 'string'],
  [6, 'stderr', 'string'],
  [7, 'spec', AnyS],
]);
export const ResizePtyRequestS = schema('containerd.task.v2.ResizePtyRequest', [...IdExec, [3, 'width', 'uint32'], [4, 'height', 'uint32']]);
export const StateRequestS = schema('containerd.task.v2.StateRequest', IdExec);
export const KillRequestS = schema('containerd.task.v2.KillRequest', [...IdExec, [3, 'signal', 'uint32'], [4, 'all', 'bool']]);
export const CloseIORequestS = schema('containerd.task.v2.CloseIORequest', [...IdExec, [3, 'stdin', 'bool']]);
export const PidsRequestS = schema('containerd.task.v2.PidsRequest', IdOnly);
export const CheckpointTaskRequestS = schema('containerd.task.v2.CheckpointTaskRequest', [
  [1, 'id', 'string'],
  [2, 'path', 'string'],
  [3, 'options', AnyS],
]);
export const UpdateTaskRequestS = schema('containerd.task.v2.UpdateTaskRequest', [
  [1, 'id', 'string'],
  [2, 'resources', AnyS],
  [3, 'annotations', 'string', 'map'],
]);
export const StartRequestS = schema('containerd.task.v2.StartRequest', IdExec);
export const WaitRequestS = schema('containerd.task.v2.WaitRequest', IdExec);
export const StatsRequestS = schema('containerd.task.v2.StatsRequest', IdOnly);
export const ConnectRequestS = schema('containerd.task.v2.ConnectRequest', IdOnly);
export const ShutdownRequestS = schema('containerd.task.v2.ShutdownRequest', [
  [1, 'id', 'string'],
  [2, 'now', 'bool'],
]);
export const PauseRequestS = schema('containerd.task.v2.PauseRequest', IdOnly);
export const ResumeRequestS = schema('containerd.task.v2.ResumeRequest', IdOnly);

// --- Task service: responses --------------------------------------------------------------------

export const CreateTaskResponseS = schema('containerd.task.v2.CreateTaskResponse', [[1, 'pid', 'uint32']]);
export const DeleteResponseS = schema('containerd.task.v2.DeleteResponse', [
  [1, 'pid', 'uint32'],
  [2, 'exitStatus', 'uint32'],
  [3, 'exitedAt', TimestampS],
]);
export const StateResponseS = schema('containerd.task.v2.StateResponse', [
  [1, 'id', 'string'],
  [2, 'bundle', 'string'],
  [3, 'pid', 'uint32'],
  [4, 'status', 'enum'],
  [5, 'stdin', 'string'],
  [6, 'stdout', 'string'],
  [7, 'stderr', 'string'],
  [8, 'terminal', 'bool'],
  [9, 'exitStatus', 'uint32'],
  [10, 'exitedAt', TimestampS],
  [11, 'execId', 'string'],
]);
export const PidsResponseS = schema('containerd.task.v2.PidsResponse', [[1, 'processes', ProcessInfoS, 'repeated']]);
export const StartResponseS = schema('containerd.task.v2.StartResponse', [[1, 'pid', 'uint32']]);
export const WaitResponseS = schema('containerd.task.v2.WaitResponse', [
  [1, 'exitStatus', 'uint32'],
  [2, 'exitedAt', TimestampS],
]);
export const StatsResponseS = schema('containerd.task.v2.StatsResponse', [[1, 'stats', AnyS]]);
export const ConnectResponseS = schema('containerd.task.v2.ConnectResponse', [
  [1, 'shimPid', 'uint32'],
  [2, 'taskPid', 'uint32'],
  [3, 'version', 'string'],
]);

// --- runc options (containerd.runc.v1) ---------------------------------------------------------

export const OptionsS = schema('containerd.runc.v1.Options', [
  [1, 'noPivotRoot', 'bool'],
  [2, 'noNewKeyring', 'bool'],
  [3, 'shimCgroup', 'string'],
  [4, 'ioUid', 'uint32'],
  [5, 'ioGid', 'uint32'],
  [6, 'binaryName', 'string'],
  [7, 'root', 'string'],
  [8, 'criuPath', 'string'],
  [9, 'systemdCgroup', 'bool'],
  [10, 'criuImagePath', 'string'],
  [11, 'criuWorkPath', 'string'],
]);
export interface Options {
  noPivotRoot: boolean;
  noNewKeyring: boolean;
  binaryName: string;
  root: string;
  systemdCgroup: boolean;
}
export const CheckpointOptionsS = schema('containerd.runc.v1.CheckpointOptions', [
  [1, 'exit', 'bool'],
  [2, 'openTcp', 'bool'],
  [3, 'externalUnixSockets', 'bool'],
  [4, 'terminal', 'bool'],
  [5, 'fileLocks', 'bool'],
  [6, 'emptyNamespaces', 'string', 'repeated'],
  [7, 'cgroupsMode', 'string'],
  [8, 'imagePath', 'string'],
  [9, 'workPath', 'string'],
]);
export interface CheckpointOptions {
  exit: boolean;
  openTcp: boolean;
  externalUnixSockets: boolean;
  terminal: boolean;
  fileLocks: boolean;
  imagePath: string;
  workPath: string;
}
export const ProcessDetailsS = schema('containerd.runc.v1.ProcessDetails', [[1, 'execId', 'string']]);

// --- task events (containerd.events) -----------------------------------------------------------

const TaskIOS = schema('containerd.events.TaskIO', [
  [1, 'stdin', 'string'],
  [2, 'stdout', 'string'],
  [3, 'stderr', 'string'],
  [4, 'terminal', 'bool'],
]);
const ContainerIdOnly = [[1, 'containerId', 'string']] as const;

export const Ev = {
  TaskCreate: schema('containerd.events.TaskCreate', [
    [1, 'containerId', 'string'],
    [2, 'bundle', 'string'],
    [3, 'rootfs', MountS, 'repeated'],
    [4, 'io', TaskIOS],
    [5, 'checkpoint', 'string'],
    [6, 'pid', 'uint32'],
  ]),
  TaskStart: schema('containerd.events.TaskStart', [
    [1, 'containerId', 'string'],
    [2, 'pid', 'uint32'],
  ]),
  TaskDelete: schema('containerd.events.TaskDelete', [
    [1, 'containerId', 'string'],
    [2, 'pid', 'uint32'],
    [3, 'exitStatus', 'uint32'],
    [4, 'exitedAt', TimestampS],
    [5, 'id', 'string'],
  ]),
  TaskExit: schema('containerd.events.TaskExit', [
    [1, 'containerId', 'string'],
    [2, 'id', 'string'],
    [3, 'pid', 'uint32'],
    [4, 'exitStatus', 'uint32'],
    [5, 'exitedAt', TimestampS],
  ]),
  TaskOOM: schema('containerd.events.TaskOOM', ContainerIdOnly),
  TaskExecAdded: schema('containerd.events.TaskExecAdded', [
    [1, 'containerId', 'string'],
    [2, 'execId', 'string'],
  ]),
  TaskExecStarted: schema('containerd.events.TaskExecStarted', [
    [1, 'containerId', 'string'],
    [2, 'execId', 'string'],
    [3, 'pid', 'uint32'],
  ]),
  TaskPaused: schema('containerd.events.TaskPaused', ContainerIdOnly),
  TaskResumed: schema('containerd.events.TaskResumed', ContainerIdOnly),
  TaskCheckpointed: schema('containerd.events.TaskCheckpointed', [
    [1, 'containerId', 'string'],
    [2, 'checkpoint', 'string'],
  ]),
} as const;

/** containerd.services.events.ttrpc.v1.Events/Forward request. */
export const ForwardRequestS = schema('containerd.services.events.ttrpc.v1.ForwardRequest', [
  [
    1,
    'envelope',
    schema('containerd.services.events.ttrpc.v1.Envelope', [
      [1, 'timestamp', TimestampS],
      [2, 'namespace', 'string'],
      [3, 'topic', 'string'],
      [4, 'event', AnyS],
    ]),
  ],
]);

// --- cgroup metrics (only the parts the shim fills) --------------------------------------------

const u64 = (no: number, name: string): readonly [number, string, 'uint64'] => [no, name, 'uint64'] as const;
const u64s = (names: readonly string[], from = 1): Array<readonly [number, string, 'uint64']> => names.map((n, i) => u64(from + i, n));

const V1MemoryEntryS = schema('io.containerd.cgroups.v1.MemoryEntry', u64s(['limit', 'usage', 'max', 'failcnt']));
export const V1MetricsS: Schema = schema('io.containerd.cgroups.v1.Metrics', [
  [2, 'pids', schema('io.containerd.cgroups.v1.PidsStat', u64s(['current', 'limit']))],
  [
    3,
    'cpu',
    schema('io.containerd.cgroups.v1.CPUStat', [
      [
        1,
        'usage',
        schema('io.containerd.cgroups.v1.CPUUsage', [...u64s(['total', 'kernel', 'user']), [4, 'perCpu', 'uint64', 'repeated']]),
      ],
      [2, 'throttling', schema('io.containerd.cgroups.v1.Throttle', u64s(['periods', 'throttledPeriods', 'throttledTime']))],
    ]),
  ],
  [
    4,
    'memory',
    schema('io.containerd.cgroups.v1.MemoryStat', [
      ...u64s([
        'cache', 'rss', 'rssHuge', 'mappedFile', 'dirty', 'writeback', 'pgPgIn', 'pgPgOut', 'pgFault', 'pgMajFault',
        'inactiveAnon', 'activeAnon', 'inactiveFile', 'activeFile', 'unevictable', 'hierarchicalMemoryLimit',
        'hierarchicalSwapLimit', 'totalCache', 'totalRss', 'totalRssHuge', 'totalMappedFile', 'totalDirty',
        'totalWriteback', 'totalPgPgIn', 'totalPgPgOut', 'totalPgFault', 'totalPgMajFault', 'totalInactiveAnon',
        'totalActiveAnon', 'totalInactiveFile', 'totalActiveFile', 'totalUnevictable',
      ]),
      [33, 'usage', V1MemoryEntryS],
      [34, 'swap', V1MemoryEntryS],
      [35, 'kernel', V1MemoryEntryS],
      [36, 'kernelTcp', V1MemoryEntryS],
    ]),
  ],
  [9, 'memoryOomControl', schema('io.containerd.cgroups.v1.MemoryOomControl', u64s(['oomKillDisable', 'underOom', 'oomKill']))],
]);

export const V2MetricsS: Schema = schema('io.containerd.cgroups.v2.Metrics', [
  [1, 'pids', schema('io.containerd.cgroups.v2.PidsStat', u64s(['current', 'limit']))],
  [2, 'cpu', schema('io.containerd.cgroups.v2.CPUStat', u64s(['usageUsec', 'userUsec', 'systemUsec', 'nrPeriods', 'nrThrottled', 'throttledUsec']))],
  [
    4,
    'memory',
    schema('io.containerd.cgroups.v2.MemoryStat', [
      ...u64s([
        'anon', 'file', 'kernelStack', 'slab', 'sock', 'shmem', 'fileMapped', 'fileDirty', 'fileWriteback', 'anonThp',
        'inactiveAnon', 'activeAnon', 'inactiveFile', 'activeFile', 'unevictable', 'slabReclaimable', 'slabUnreclaimable',
        'pgfault', 'pgmajfault',
      ]),
      ...u64s(['usage', 'usageLimit', 'swapUsage', 'swapLimit'], 32),
    ]),
  ],
  [8, 'memoryEvents', schema('io.containerd.cgroups.v2.MemoryEvents', u64s(['low', 'high', 'max', 'oom', 'oomKill']))],
]);

export type { Any, Timestamp };
