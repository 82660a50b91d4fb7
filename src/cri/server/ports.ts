/**
 * The narrow interfaces (ports) RuntimeContext holds instead of concrete classes: just the
 * methods the CRI handlers call on the task layer, CNI, the pod's kernel objects, snapshots,
 * images, streaming, CDI, and a clock for their timers. daemon/services.ts fills them with the
 * real TaskManager, CniManager, … (`hostPods()` in cri/sandbox/host-pods.ts for the kernel objects); unit tests fill
 * them with the fakes in test/helpers/fakes/ and run handler flows without root (containerd's
 * newTestCRIService idea).
 */
import type { ImageService } from '../../core/images/service.js';
import type { Snapshotter } from '../../core/snapshots/types.js';
import type { CniManager, PinRequest, PodPins } from '../../network/index.js';
import type { TaskManager } from '../../runtime/index.js';
import type { TaskEvents } from '../../runtime/types.js';
import type { StreamingServer } from '../../streaming/index.js';
import type { CdiRegistry } from '../../cdi/index.js';

/** The task layer: what handlers ask of TaskManager (plus its exit and OOM events). */
export type TaskPort = Pick<
  TaskManager,
  'create' | 'start' | 'kill' | 'wait' | 'delete' | 'list' | 'exec' | 'closeIO' | 'resizePty' | 'state' | 'stats' | 'update' | 'checkpoint' | 'shimOf'
> & {
  on<K extends keyof TaskEvents>(event: K, listener: (...args: TaskEvents[K]) => void): unknown;
};

/** The pod network (CNI ADD/DEL). */
export type NetworkPort = Pick<CniManager, 'setupPod' | 'teardownPod'>;

/** The pod's kernel objects: pinned namespaces, the netns handle and the /dev/shm tmpfs. */
export interface PodHostPort {
  pin(req: PinRequest): Promise<unknown>;
  /** Idempotent. */
  unpin(pins: PodPins): Promise<void>;
  alive(pins: PodPins): Promise<boolean>;
  /** Idempotent. */
  removeNetns(path: string): Promise<void>;
  /** Mounts the pod's shm tmpfs on `path` (nothing when already mounted). */
  mountShm(path: string): Promise<void>;
  /** Idempotent. */
  unmountShm(path: string): Promise<void>;
}

export type SnapshotPort = Snapshotter;
export type ImagePort = Pick<ImageService, 'find' | 'get' | 'pull' | 'gc'> & Partial<Pick<ImageService, 'answersKey'>>;
export type StreamingPort = Pick<StreamingServer, 'getExec' | 'getAttach' | 'getPortForward'>;
export type CdiPort = Pick<CdiRegistry, 'resolve'>;

/** Timers handlers wait on (grace periods, kill waits): a test advances them by hand. */
export interface Clock {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The longest delay one Node timer takes; a longer one fires after 1 ms (TimeoutOverflowWarning). */
export const TIMER_MAX_MS = 2 ** 31 - 1;

/**
 * Real timers. A delay past TIMER_MAX_MS (24.8 days: a StopContainer grace period or an ExecSync
 * timeout of 30 days is valid CRI) is waited in steps, so it never fires early.
 */
export const systemClock: Clock = {
  setTimeout: (fn, ms) => {
    const h: { timer?: NodeJS.Timeout } = {};
    const arm = (left: number): void => {
      h.timer = left > TIMER_MAX_MS ? setTimeout(() => arm(left - TIMER_MAX_MS), TIMER_MAX_MS) : setTimeout(fn, left);
    };
    arm(ms);
    return h;
  },
  clearTimeout: (h) => clearTimeout((h as { timer?: NodeJS.Timeout }).timer),
};

/** Resolves after `ms` on `clock`; `cancel` stops the timer. */
export function sleep(clock: Clock, ms: number): { done: Promise<void>; cancel: () => void } {
  let handle: unknown;
  const done = new Promise<void>((r) => {
    handle = clock.setTimeout(r, ms);
  });
  return { done, cancel: () => clock.clearTimeout(handle) };
}
