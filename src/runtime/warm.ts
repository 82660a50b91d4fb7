/**
 * Warm berth-shim processes, so the pod start path never waits for a Node process to boot.
 *
 * berthd spawns `<berth-shim> -namespace NS -address A -socket <shimStateDir>/warm-<rand>.sock serve`
 * ahead of time (the same long-lived server berth-shim's own `start` spawns; it writes "ok" on
 * fd 3 once listening) and connects to it. When the first container of a new group needs a
 * shim, the manager adopts a warm one: it renames the warm socket file to the group's socket
 * path (the name berth-shim's `start` computes: socketPath(stateDir, ns, groupKey(...))), so a
 * later `start` for that group — by berthd after a restart, or by anyone else — finds it. A
 * listening unix socket keeps working after its path is renamed (the inode is what is bound),
 * and the already open connection is reused: adoption costs one rename.
 */
import { spawn } from 'node:child_process';
import { openSync, closeSync, readdirSync } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import type { TtrpcClient } from '../ttrpc/index.js';
import { ensurePrivateDir } from '../ttrpc/index.js';
import type { Logger } from '../log.js';
import { connectWithTimeout, readPidFile } from './shim.js';

export interface WarmShim {
  namespace: string;
  socket: string;
  pid: number;
  client: TtrpcClient;
}

export interface WarmPoolOptions {
  /** berth-shim binary (bin/containerd-shim-berth-v1). */
  binary: string;
  /** Where berth-shim keeps its sockets (BERTH_SHIM_STATE_DIR). */
  shimStateDir: string;
  namespaces: string[];
  /** Warm shims kept per namespace. */
  size: number;
  address: string;
  ttrpcAddress: string;
  env: Record<string, string>;
  rpcTimeoutMs: number;
  log: Logger;
}

export const WARM_PREFIX = 'warm-';

/** Quiet time after a take before the pool tops up a spare it still has (see take()). */
export const REFILL_DELAY_MS = 1000;

export class WarmPool {
  private readonly idle = new Map<string, WarmShim[]>();
  private readonly filling = new Map<string, number>();
  /** The 'close' listener of each idle shim's connection. */
  private readonly idleListeners = new Map<WarmShim, () => void>();
  /** Delayed refills, per namespace. */
  private readonly timers = new Map<string, NodeJS.Timeout>();
  /** Spawns in flight (each ends adopted into the pool, or shut down when closed meanwhile). */
  private readonly starting = new Set<Promise<void>>();
  private closed = false;

  constructor(private readonly o: WarmPoolOptions) {}

  /** Starts filling the pool in the background. */
  start(): void {
    for (const ns of this.o.namespaces) this.refill(ns);
  }

  /** Resolves once every namespace has its warm shims (for tests and benchmarks). */
  async ready(timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.o.namespaces.some((ns) => (this.idle.get(ns)?.length ?? 0) < this.o.size)) {
      if (Date.now() > deadline) throw new Error('warm shims not ready');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Idle warm shims (diagnostics, tests). */
  list(): Array<{ namespace: string; pid: number; socket: string }> {
    return [...this.idle.values()].flat().map((w) => ({ namespace: w.namespace, pid: w.pid, socket: w.socket }));
  }

  /**
   * A live warm shim for `ns`, removed from the pool, which refills behind it: at once when it
   * is empty, else once takes pause for REFILL_DELAY_MS. Booting a Node process is ~200 ms of
   * CPU; on a small node, doing it right away competes with the `runc create` the adopted shim
   * is about to run (and with the next pods of a burst), so a spare left in the pool waits.
   */
  take(ns: string): WarmShim | undefined {
    const list = this.idle.get(ns);
    let w: WarmShim | undefined;
    while (list && list.length > 0) {
      const c = list.shift() as WarmShim;
      const onClose = this.idleListeners.get(c);
      if (onClose) c.client.off('close', onClose);
      this.idleListeners.delete(c);
      if (c.client.isOpen) {
        w = c;
        break;
      }
    }
    if ((list?.length ?? 0) === 0) this.refill(ns);
    else this.refillLater(ns);
    return w;
  }

  private refillLater(ns: string): void {
    const old = this.timers.get(ns);
    if (old) clearTimeout(old);
    const t = setTimeout(() => {
      this.timers.delete(ns);
      this.refill(ns);
    }, REFILL_DELAY_MS);
    t.unref();
    this.timers.set(ns, t);
  }

  /** Puts back a shim that was taken but not used. */
  giveBack(w: WarmShim): void {
    if (this.closed || !w.client.isOpen) return;
    this.addIdle(w);
  }

  private refill(ns: string): void {
    if (this.closed || !this.o.namespaces.includes(ns)) return;
    const want = this.o.size - (this.idle.get(ns)?.length ?? 0) - (this.filling.get(ns) ?? 0);
    for (let i = 0; i < want; i++) {
      this.filling.set(ns, (this.filling.get(ns) ?? 0) + 1);
      const p: Promise<void> = this.spawnOne(ns)
        .then((w) => {
          // Closed while it was starting: close() waits for this shutdown.
          if (this.closed) return shutdownWarm(w);
          this.addIdle(w);
        })
        .catch((err: unknown) => this.o.log.warn('warm shim failed to start', { ns, err }))
        .finally(() => {
          this.filling.set(ns, (this.filling.get(ns) ?? 1) - 1);
          this.starting.delete(p);
        });
      this.starting.add(p);
    }
  }

  private addIdle(w: WarmShim): void {
    const list = this.idle.get(w.namespace) ?? [];
    list.push(w);
    this.idle.set(w.namespace, list);
    // A warm shim that dies while idle just leaves the pool. The listener goes when the shim
    // is taken: a recycled shim's connection must not collect one per pod it served.
    const onClose = (): void => {
      const l = this.idle.get(w.namespace);
      const at = l?.indexOf(w) ?? -1;
      if (l && at >= 0) l.splice(at, 1);
    };
    w.client.once('close', onClose);
    this.idleListeners.set(w, onClose);
  }

  /**
   * Takes back a shim whose last task is gone (it came from this pool and hosts nothing now),
   * if the pool has room: its socket, pid and log files get a fresh warm name. Pod churn then
   * costs no Node boot at all. False when the pool is full or closed (the caller shuts it down).
   */
  async recycle(w: WarmShim): Promise<boolean> {
    const ns = w.namespace;
    if (this.closed || !this.o.namespaces.includes(ns) || !w.client.isOpen) return false;
    if ((this.idle.get(ns)?.length ?? 0) + (this.filling.get(ns) ?? 0) >= this.o.size) return false;
    const socket = join(this.o.shimStateDir, `${WARM_PREFIX}${randomBytes(6).toString('hex')}.sock`);
    try {
      await rename(w.socket, socket);
    } catch {
      return false;
    }
    await rename(`${w.socket}.pid`, `${socket}.pid`).catch(() => writeFile(`${socket}.pid`, String(w.pid)));
    await rename(`${w.socket}.log`, `${socket}.log`).catch(() => undefined);
    if (this.closed) {
      await shutdownWarm({ ...w, socket });
      return true;
    }
    this.addIdle({ ...w, socket });
    const t = this.timers.get(ns);
    if (t && (this.idle.get(ns)?.length ?? 0) >= this.o.size) {
      clearTimeout(t);
      this.timers.delete(ns);
    }
    return true;
  }

  private async spawnOne(namespace: string): Promise<WarmShim> {
    await ensurePrivateDir(this.o.shimStateDir);
    const socket = join(this.o.shimStateDir, `${WARM_PREFIX}${randomBytes(6).toString('hex')}.sock`);
    const logFd = openSync(`${socket}.log`, 'a', 0o600);
    // Own session: a signal to berthd's process group must not reach the shim.
    const child = spawn(this.o.binary, ['-namespace', namespace, '-address', this.o.address, '-id', 'warm', '-socket', socket, 'serve'], {
      detached: true,
      cwd: '/',
      stdio: ['ignore', logFd, logFd, 'pipe'],
      env: { ...process.env, ...this.o.env, TTRPC_ADDRESS: this.o.ttrpcAddress, GRPC_ADDRESS: this.o.address, NAMESPACE: namespace },
    });
    closeSync(logFd);
    const ready = child.stdio[3] as net.Socket;
    const ok = await new Promise<boolean>((res) => {
      let buf = '';
      const t = setTimeout(() => res(false), 15_000);
      ready.on('data', (d: Buffer) => {
        buf += d.toString();
        if (buf.includes('ok')) {
          clearTimeout(t);
          res(true);
        }
      });
      ready.on('error', () => undefined);
      child.once('exit', () => {
        clearTimeout(t);
        res(false);
      });
    });
    ready.destroy();
    child.unref();
    if (!ok || child.pid === undefined) {
      child.kill('SIGKILL');
      throw new Error(`warm shim did not come up (log: ${socket}.log)`);
    }
    await writeFile(`${socket}.pid`, String(child.pid));
    const client = await connectWithTimeout(socket, 5000, this.o.rpcTimeoutMs);
    return { namespace, socket, pid: child.pid, client };
  }

  /** Shuts the idle warm shims down (they host nothing). */
  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    // Shims still starting would outlive berthd (it exits right after close): wait for them.
    await Promise.allSettled([...this.starting]);
    const all = [...this.idle.values()].flat();
    this.idle.clear();
    await Promise.all(all.map((w) => shutdownWarm(w)));
  }
}

async function shutdownWarm(w: WarmShim): Promise<void> {
  const { createClient } = await import('../ttrpc/index.js');
  const { Task } = await import('../api/containerd/runtime/v2/task/shim_pb.js');
  let stopped = false;
  try {
    await createClient(Task, w.client).shutdown({ id: 'warm', now: true }, { timeoutMs: 2000 });
    stopped = true;
  } catch (err) {
    // The connection dropping is the shim exiting; anything else means it is wedged.
    stopped = err instanceof Error && 'code' in err && err.code === 'ttrpc.closed';
  }
  w.client.close();
  if (!stopped && w.pid > 0) {
    try {
      process.kill(w.pid, 'SIGTERM');
    } catch {
      // gone
    }
  }
  for (const f of [w.socket, `${w.socket}.pid`, `${w.socket}.log`]) await rm(f, { force: true });
}

/** Warm shims left behind by a previous berthd: shut them down (nothing runs in them). */
export async function reapStaleWarm(shimStateDir: string, rpcTimeoutMs: number): Promise<number> {
  let names: string[] = [];
  try {
    names = readdirSync(shimStateDir).filter((n) => n.startsWith(WARM_PREFIX) && n.endsWith('.sock'));
  } catch {
    return 0;
  }
  for (const n of names) {
    const socket = join(shimStateDir, n);
    const pid = (await readPidFile(`${socket}.pid`)) ?? 0;
    try {
      const client = await connectWithTimeout(socket, 1000, rpcTimeoutMs);
      await shutdownWarm({ namespace: '', socket, pid, client });
    } catch {
      await rm(socket, { force: true });
      await rm(`${socket}.pid`, { force: true });
    }
  }
  return names.length;
}
