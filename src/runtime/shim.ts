/**
 * One connection to one shim process, with its life as an explicit state table:
 *
 *   ready ──connection lost──▶ examining ──reconnected / started again──▶ ready
 *     │                            └──────────gone for good──────────▶ dead
 *     └──retire (idle per-pod shim)──▶ retiring ──▶ detached
 *   any state but dead ──detach (berthd closing)──▶ detached
 *
 * Several tasks (all of a namespace for berth-shim, a pod's for other shims) may live in the
 * same shim; the shim set (shims.ts) keeps exactly one handle per shim address.
 */
import { readFile } from 'node:fs/promises';
import { openSync, closeSync, constants } from 'node:fs';
import net from 'node:net';
import type { GenService } from '@bufbuild/protobuf/codegenv2';
import { TtrpcClient, createClient, type ServiceClient } from '../ttrpc/index.js';
import { Task } from '../api/containerd/runtime/v2/task/shim_pb.js';
import { errors } from '../errors.js';
import type { Logger } from '../log.js';

export type TaskDef = typeof Task extends GenService<infer S> ? S : never;
export type TaskClient = ServiceClient<TaskDef>;

export interface ShimIdentity {
  /** Group identity in the shim set: runtime name, namespace and (per-pod shims) group key. */
  key: string;
  runtime: string;
  namespace: string;
  /** Shim binary (for `delete`). */
  binary: string;
  /** Socket path. */
  address: string;
  /** berth-shim: when it dies it is started again and takes its containers over. */
  restartable: boolean;
}

export type ShimState = 'ready' | 'examining' | 'retiring' | 'dead' | 'detached';

const NEXT: Record<ShimState, readonly ShimState[]> = {
  ready: ['examining', 'retiring', 'detached'],
  examining: ['ready', 'dead', 'detached'],
  retiring: ['detached', 'dead'],
  dead: [],
  detached: [],
};

export function canShimTransition(from: ShimState, to: ShimState): boolean {
  return NEXT[from].includes(to);
}

export class ShimHandle {
  client: TtrpcClient;
  task: TaskClient;
  pid: number | undefined;
  /** Task ids hosted here (including ones being created). */
  readonly tasks = new Set<string>();

  /** A task joins this shim (its bundle dir remembered for restarts). */
  addTask(id: string, dir: string): void {
    this.tasks.add(id);
    this.dirs.set(id, dir);
  }

  removeTask(id: string): void {
    this.tasks.delete(id);
    this.dirs.delete(id);
  }

  /** Any hosted task's (id, bundle dir), to run `<shim> start` from. */
  anyTask(): { id: string; dir: string } | undefined {
    for (const [id, dir] of this.dirs) return { id, dir };
    return undefined;
  }
  private _state: ShimState = 'ready';
  /** While examining: resolves true once the shim serves again, false when it is dead. */
  verdict: Promise<boolean> | undefined;
  /** Bundle dir of each hosted task: `<shim> start` runs from one when the shim must be started again. */
  readonly dirs = new Map<string, string>();
  private unwatch: (() => void) | undefined;
  private logReader: net.Socket | undefined;

  constructor(
    readonly id: ShimIdentity,
    client: TtrpcClient,
    pid: number | undefined,
  ) {
    this.client = client;
    this.task = createClient(Task, client);
    this.pid = pid;
  }

  static async connect(id: ShimIdentity, connectTimeoutMs: number, rpcTimeoutMs: number, pid?: number): Promise<ShimHandle> {
    const client = await connectWithTimeout(id.address, connectTimeoutMs, rpcTimeoutMs);
    return new ShimHandle(id, client, pid);
  }

  get state(): ShimState {
    return this._state;
  }

  /** Serves requests now (or will after a pending verdict). */
  get usable(): boolean {
    return (this._state === 'ready' || this._state === 'examining') && (this._state === 'examining' || this.client.isOpen);
  }

  transition(to: ShimState): void {
    if (this._state === to) return;
    if (!canShimTransition(this._state, to)) {
      throw errors.internal('runtime.shim_transition', `shim ${this.id.address}: invalid transition ${this._state} → ${to}`);
    }
    this._state = to;
  }

  /** Calls `onLost` once when the current connection closes while the shim is ready. */
  watch(onLost: () => void): void {
    this.unwatch?.();
    const client = this.client;
    const onClose = (): void => {
      if (this._state !== 'ready' || this.client !== client) return;
      onLost();
    };
    client.once('close', onClose);
    this.unwatch = () => client.off('close', onClose);
  }

  replaceClient(client: TtrpcClient): void {
    this.unwatch?.();
    this.client = client;
    this.task = createClient(Task, client);
  }

  /** True when the shim's pid (if known) still exists. */
  pidAlive(): boolean | undefined {
    if (!this.pid) return undefined;
    try {
      process.kill(this.pid, 0);
      return true;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'EPERM';
    }
  }

  /**
   * Drains the shim's "log" FIFO (containerd-shim-runc-v2 writes its logrus output there) into
   * our logger. Opened read-write so the open never blocks and no EOF arrives between writers.
   */
  attachLog(fifo: string, log: Logger): void {
    if (this.logReader) return;
    let fd: number;
    try {
      fd = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK);
    } catch {
      return;
    }
    try {
      const s = new net.Socket({ fd, readable: true, writable: false });
      let buf = '';
      s.on('data', (d: Buffer) => {
        buf += d.toString('utf8');
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i).trim();
          buf = buf.slice(i + 1);
          if (line) log.debug('shim log', { shim: this.id.address, line });
        }
        if (buf.length > 65536) buf = '';
      });
      s.on('error', () => undefined);
      this.logReader = s;
    } catch {
      closeSync(fd);
    }
  }

  /** Closes our side (connection, log reader); the shim process is left alone. */
  detach(to: 'detached' | 'dead' = 'detached'): void {
    if (this._state !== 'dead' && this._state !== 'detached') this.transition(to);
    this.unwatch?.();
    this.client.close();
    this.logReader?.destroy();
    this.logReader = undefined;
  }
}

export function connectWithTimeout(path: string, timeoutMs: number, defaultTimeoutMs: number): Promise<TtrpcClient> {
  return new Promise((resolve, reject) => {
    let done = false;
    const t = setTimeout(() => {
      done = true;
      reject(new Error(`connect ${path}: timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    TtrpcClient.connect(path, { defaultTimeoutMs }).then(
      (c) => {
        clearTimeout(t);
        if (done) c.close();
        else resolve(c);
      },
      (err: unknown) => {
        clearTimeout(t);
        if (!done) reject(err);
      },
    );
  });
}

export async function readPidFile(path: string): Promise<number | undefined> {
  try {
    const n = Number((await readFile(path, 'utf8')).trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}
