/**
 * What every RuntimeService handler gets: the stores, ports (server/ports.ts) to the image
 * service, networking, the pod's kernel objects, the task manager, snapshots, streaming and
 * CDI, the container event bus, the startup tracer and a clock, plus the settings handlers need. daemon/services.ts builds it; handlers never import daemon/.
 */
import type { KeyedLock } from '../../keyed-lock.js';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { create, fromBinary, toBinary, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import type { Logger } from '../../log.js';
import { errors } from '../../errors.js';
import type { ContainerRecord, ContainerStore, NameStore, SandboxRecord, SandboxStore } from '../../core/metadata/records.js';
import type { RuntimeHandler } from '../../runtime/types.js';
import type { CdiPort, Clock, ImagePort, NetworkPort, PodHostPort, SnapshotPort, StreamingPort, TaskPort } from './ports.js';
import { BookkeepingRetries } from '../../cleanup.js';
import { LogForwarders } from '../container/io.js';
import { DeferredRemovals } from '../container/deferred-remove.js';
import { UserDbCache } from '../container/rootfs.js';
import { ImageVolumeRefs } from '../container/image-volume.js';
import { CpuRates, TaskSamples } from '../observe/container-stats.js';
import { Remapper } from '../../core/snapshots/index.js';
import { NetnsDialer } from '../../network/netns-dial.js';

/** Settings the runtime handlers need (from the daemon config). */
export interface RuntimeSettings {
  root: string;
  state: string;
  sandboxImage: string;
  defaultRuntime: string;
  runtimes: Record<string, RuntimeHandler & { podAnnotations?: string[]; containerAnnotations?: string[] }>;
  /** Lowest oom_score_adj berthd may set (its own, when it lacks CAP_SYS_RESOURCE); undefined = no clamp. */
  restrictOomScoreAdj?: number;
  /** Directory for per-pod netns files. */
  netnsDir: string;
  /** Pod CIDR kept from UpdateRuntimeConfig. */
  podCidr?: string;
  /** By handler: whether recursive read-only mounts work (probed at start, daemon/features.ts). */
  recursiveReadOnlyMounts?: Record<string, boolean>;
  /**
   * How the rootfs of a container in a pod user namespace is made (config userns_rootfs and
   * the start probe, daemon/features.ts): `idmap` = overlay over idmapped image layers, `copy`
   * = an ownership-shifted copy of the image per (image, mapping). With `fallback`, a container
   * whose idmapped rootfs the kernel refuses gets the copy (the error is logged). Unset: copy.
   */
  usernsRootfs?: { mode: 'idmap' | 'copy'; fallback: boolean };
}

export type ContainerEventKind = 'CREATED' | 'STARTED' | 'STOPPED' | 'DELETED';

export interface ContainerEvent {
  kind: ContainerEventKind;
  namespace: string;
  containerId: string;
  sandboxId: string;
  /** Unix nanoseconds. */
  createdAt: bigint;
}

/** Container lifecycle events for GetContainerEvents (every subscriber sees every event). */
export class ContainerEventBus extends EventEmitter {
  constructor() {
    super();
    this.setMaxListeners(0);
  }
  publish(e: ContainerEvent): void {
    this.emit('event', e);
  }
  subscribe(fn: (e: ContainerEvent) => void): () => void {
    this.on('event', fn);
    return () => this.off('event', fn);
  }
}

export interface TraceSpan {
  name: string;
  /** Unix milliseconds (fractional). */
  start: number;
  durationMs: number;
  attrs?: Record<string, string | number | boolean>;
  error?: string;
}

/**
 * Records the timed steps of RunPodSandbox, CreateContainer, StartContainer and PullImage,
 * keyed by pod sandbox id (and by image reference for pulls). Kept in memory, bounded.
 */
export class Tracer {
  private readonly traces = new Map<string, TraceSpan[]>();
  constructor(private readonly maxKeys = 512) {}

  record(key: string, span: TraceSpan): void {
    let list = this.traces.get(key);
    if (!list) {
      if (this.traces.size >= this.maxKeys) this.traces.delete(this.traces.keys().next().value as string);
      list = [];
      this.traces.set(key, list);
    }
    list.push(span);
  }

  /** Time `fn` as span `name` under `key`. */
  async span<T>(key: string, name: string, fn: () => Promise<T> | T, attrs?: TraceSpan['attrs']): Promise<T> {
    const t0 = performance.timeOrigin + performance.now();
    try {
      const v = await fn();
      this.record(key, { name, start: t0, durationMs: performance.timeOrigin + performance.now() - t0, attrs });
      return v;
    } catch (err) {
      this.record(key, { name, start: t0, durationMs: performance.timeOrigin + performance.now() - t0, attrs, error: (err as Error).message });
      throw err;
    }
  }

  get(key: string): TraceSpan[] {
    return this.traces.get(key) ?? [];
  }

  drop(key: string): void {
    this.traces.delete(key);
  }
}

/** What handlers hold: the stores, plus ports (server/ports.ts) for everything outside berthd. */
export interface RuntimeContext {
  settings: RuntimeSettings;
  log: Logger;
  images: ImagePort;
  sandboxes: SandboxStore;
  containers: ContainerStore;
  names: NameStore;
  snapshotter: SnapshotPort;
  cni: NetworkPort;
  /** The pod's pinned namespaces, netns handle and shm (sandbox/host-pods.ts). */
  pods: PodHostPort;
  tasks: TaskPort;
  streaming: StreamingPort;
  events: ContainerEventBus;
  tracer: Tracer;
  locks: KeyedLock;
  /** The node's CDI spec files (CreateContainer resolves CDI_devices through it). */
  cdi: CdiPort;
  /** Timers of grace periods and kill waits (systemClock in berthd). */
  clock: Clock;
  /** RunPodSandbox calls in flight by `<namespace>/<sandbox name>` → the sandbox id they make. */
  sandboxRuns: Map<string, Promise<string>>;
  /** berthd's own CRI log writers for shims that write raw bytes (container/io.ts). */
  logForwarders: LogForwarders;
  /** RemoveContainer's work after the reply, running now (container/deferred-remove.ts). */
  removals: DeferredRemovals;
  /** /etc/passwd and /etc/group of recently used images (CreateContainer). */
  userDbs: UserDbCache;
  /** Image volume views that creates in flight use (container/image-volume.ts). */
  imageVolumes: ImageVolumeRefs;
  /** Remapped (ownership-shifted) image parents on `snapshotter`: builds and users in flight. */
  remapper: Remapper;
  /** CPU usage rates of containers and pods between two stats calls (observe/). */
  cpuRates: CpuRates;
  /** Task cgroup samples shared by stats calls made at once (observe/container-stats.ts). */
  taskSamples: TaskSamples;
  /** The thread that makes sockets inside pod network namespaces (port-forward). */
  netnsDialer: NetnsDialer;
  /** `<state>/idmap` roots known to be mounted private (container/idmap.ts idmapRoot). */
  idmapRoots: Set<string>;
  /** Which way of making a user namespace rootfs was last logged (container/userns.ts). */
  usernsRootfsLogged: { way?: 'idmap' | 'copy' };
  /** Forgets (record deletes, name releases) of failed creates that failed themselves, run again (cleanup.ts). */
  bookkeepingRetries: BookkeepingRetries;
}

/**
 * The in-memory state a RuntimeContext owns besides its stores and ports: everything handlers
 * remember between calls lives here (never at module level), so two contexts in one process —
 * as unit tests build — share nothing.
 */
export type HandlerState = Pick<
  RuntimeContext,
  | 'sandboxRuns'
  | 'logForwarders'
  | 'removals'
  | 'userDbs'
  | 'imageVolumes'
  | 'remapper'
  | 'cpuRates'
  | 'taskSamples'
  | 'netnsDialer'
  | 'idmapRoots'
  | 'usernsRootfsLogged'
  | 'bookkeepingRetries'
>;

/** Fresh handler state for one context over `snapshotter`. */
export function newHandlerState(snapshotter: SnapshotPort): HandlerState {
  return {
    sandboxRuns: new Map(),
    logForwarders: new LogForwarders(),
    removals: new DeferredRemovals(),
    userDbs: new UserDbCache(),
    imageVolumes: new ImageVolumeRefs(),
    remapper: new Remapper(snapshotter),
    cpuRates: new CpuRates(),
    taskSamples: new TaskSamples(),
    netnsDialer: new NetnsDialer(),
    idmapRoots: new Set(),
    usernsRootfsLogged: {},
    bookkeepingRetries: new BookkeepingRetries(),
  };
}

/** A new 64-hex id (sandbox / container / exec). */
export function newId(): string {
  return randomBytes(32).toString('hex');
}

/** Process-wide: the last value nowNanos returned (timestamps never repeat or go back), and the monotonic time then. */
let lastNanos = 0n;
let lastMono = 0n;

/**
 * Unix nanoseconds, strictly increasing within the process. The sub-millisecond part comes from
 * performance.now(), whose fraction is not in step with Date.now()'s millisecond: two calls in
 * one millisecond could go back in time (a CPU rate over them was then dropped as a reset).
 * When the wall clock is behind the last value (that, or the clock was stepped back: NTP, a
 * resumed VM), the value moves on from the last one by the monotonic time elapsed, not by 1 ns:
 * a step back froze the timestamps for as long as the step, and a CPU rate over two samples
 * seconds apart but stamped nanoseconds apart came out billions of times too high.
 */
export function nowNanos(): bigint {
  const mono = process.hrtime.bigint();
  let t = BigInt(Date.now()) * 1_000_000n + BigInt(Math.floor((performance.now() % 1) * 1e6));
  if (t <= lastNanos) {
    const elapsed = mono - lastMono;
    t = lastNanos + (elapsed > 0n ? elapsed : 1n);
  }
  lastNanos = t;
  lastMono = mono;
  return t;
}

/** Protobuf message ↔ base64 (records keep CRI configs verbatim). */
export function encodeMessage<D extends DescMessage>(schema: D, msg: MessageShape<D>): string {
  return Buffer.from(toBinary(schema, msg)).toString('base64');
}
export function decodeMessage<D extends DescMessage>(schema: D, b64: string | undefined): MessageShape<D> {
  return b64 ? fromBinary(schema, Buffer.from(b64, 'base64')) : create(schema);
}

/** Look a sandbox up by full id or unique prefix; NotFound names what was asked. */
export function findSandbox(ctx: RuntimeContext, ns: string, id: string, field = 'pod_sandbox_id'): SandboxRecord {
  if (!id) throw errors.invalidArgument('sandbox.empty_id', `${field} is required`);
  const exact = ctx.sandboxes.get(ns, id);
  if (exact) return exact;
  const ids = ctx.sandboxes.idsWithPrefix(ns, id);
  if (ids.length === 1) return ctx.sandboxes.get(ns, ids[0]!)!;
  if (ids.length > 1) throw errors.invalidArgument('sandbox.ambiguous_id', `${field} ${id} matches ${ids.length} pod sandboxes`);
  throw errors.notFound('sandbox.not_found', `pod sandbox ${id} not found`);
}

export function findContainer(ctx: RuntimeContext, ns: string, id: string, field = 'container_id'): ContainerRecord {
  if (!id) throw errors.invalidArgument('container.empty_id', `${field} is required`);
  const exact = ctx.containers.get(ns, id);
  if (exact) return exact;
  const ids = ctx.containers.idsWithPrefix(ns, id);
  if (ids.length === 1) return ctx.containers.get(ns, ids[0]!)!;
  if (ids.length > 1) throw errors.invalidArgument('container.ambiguous_id', `${field} ${id} matches ${ids.length} containers`);
  throw errors.notFound('container.not_found', `container ${id} not found`);
}
