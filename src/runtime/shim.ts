/**
 * One connection to one shim process. Several tasks (a pod's containers, or all of a node's)
 * may live in the same shim; the manager keeps exactly one connection per shim address.
 */
import { readFile } from 'node:fs/promises';
import { openSync, closeSync, constants } from 'node:fs';
import net from 'node:net';
import type { GenService } from '@bufbuild/protobuf/codegenv2';
import { TtrpcClient, createClient, type ServiceClient } from '../ttrpc/index.js';
import { Task } from '../api/containerd/runtime/v2/task/shim_pb.js';
import type { Logger } from '../log.js';

export type TaskDef = typeof Task extends GenService<infer S> ? S : never;
export type TaskClient = ServiceClient<TaskDef>;

export interface ShimIdentity {
  /** Group identity in the manager: runtime name, namespace and group key. */
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

export class ShimHandle {
  client: TtrpcClient;
  task: TaskClient;
  pid: number | undefined;
  /** Task ids hosted here (including ones being created). */
  readonly tasks = new Set<string>();
  dead = false;
  /** Removes the task manager's connection-loss watcher (set by TaskManager.watch). */
  unwatch: (() => void) | undefined;
  /** True once we decided to shut it down: its connection closing is expected. */
  retiring = false;
  /** Set while a lost connection is being examined; resolves true if reconnected. */
  recovery: Promise<boolean> | undefined;
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

  replaceClient(client: TtrpcClient): void {
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
  detach(): void {
    this.retiring = true;
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
