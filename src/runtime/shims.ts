/**
 * The shim processes berthd talks to: start (the shim v2 binary protocol, shim-binary.ts),
 * connect, load the ones that outlived a berthd restart, start a berth-shim again when it
 * dies, retire idle per-pod shims, and close. The task API itself is task-manager.ts.
 *
 * Grouping: berth-shim is one long-lived process per namespace (conmon monitors each
 * container, so a shim crash loses nothing and a new shim takes everything over from disk).
 * Other shims (containerd-shim-runc-v2) are one per (runtime, namespace, pod), as containerd
 * groups them; when such a shim dies its tasks are dead (onDead).
 */
import { lstat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log.js';
import { KeyedLock } from '../keyed-lock.js';
import { ENV_SHIM_STATE_DIR } from '../shim-protocol.js';
import { ShimHandle, connectWithTimeout, readPidFile, type ShimIdentity } from './shim.js';
import { resolveShimBinary, runtimeOptions, shimDelete, shimStart, type ShimExecContext } from './shim-binary.js';
import { BERTH_SHIM_TYPE, type RuntimeHandler } from './types.js';

export interface ShimSetOptions {
  handlers: Record<string, RuntimeHandler>;
  /** 0700 directory of berth-shim sockets (<state>/s). */
  shimStateDir: string;
  /** berthd's address given to shims as -address. */
  address: string;
  /** Events/Forward socket given to shims as TTRPC_ADDRESS. */
  eventsSocket: string;
  publishBinary?: string;
  debugShims?: boolean;
  shimEnv?: Record<string, string>;
  rpcTimeoutMs: number;
  slowTimeoutMs: number;
  /** Shut an idle per-pod shim down (default true). */
  shutdownIdleShims?: boolean;
  log: Logger;
  /** A shim is gone for good: its tasks are dead. */
  onDead: (s: ShimHandle) => Promise<void>;
  /** A berth-shim was started again: its tasks may have exited meanwhile. */
  onRestarted?: (s: ShimHandle) => Promise<void>;
}

export class ShimSet {
  /** Live shims by group identity and by socket path. */
  private readonly groups = new Map<string, ShimHandle>();
  private readonly byAddress = new Map<string, ShimHandle>();
  private readonly locks = new KeyedLock();
  private closing = false;

  constructor(private readonly o: ShimSetOptions) {}

  /** berth-shim: one per namespace; other shims: one per pod (group key). */
  static groupIdentity(h: RuntimeHandler, runtime: string, ns: string, group: string): string {
    return `${runtime}\u0000${ns}\u0000${h.type === BERTH_SHIM_TYPE ? '' : group}`;
  }

  all(): ShimHandle[] {
    return [...this.byAddress.values()];
  }

  private env(h: RuntimeHandler): Record<string, string> {
    const env: Record<string, string> = { ...this.o.shimEnv };
    if (h.type === BERTH_SHIM_TYPE) env[ENV_SHIM_STATE_DIR] = this.o.shimStateDir;
    return env;
  }

  execContext(h: RuntimeHandler, ns: string, id: string, bundle: string): ShimExecContext {
    return {
      binary: resolveShimBinary(h),
      namespace: ns,
      id,
      bundle,
      address: this.o.address,
      ttrpcAddress: this.o.eventsSocket,
      publishBinary: this.o.publishBinary,
      debug: this.o.debugShims,
      env: this.env(h),
      timeoutMs: this.o.slowTimeoutMs,
    };
  }

  /** `<shim> delete` for a bundle whose shim is gone. */
  async deleteBundle(h: RuntimeHandler, ns: string, id: string, dir: string): Promise<void> {
    await shimDelete(this.execContext(h, ns, id, dir));
  }

  /** Serializes work per group (shim start, idle shutdown). */
  private withLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.run(key, fn);
  }

  private add(s: ShimHandle): void {
    this.byAddress.set(s.id.address, s);
    this.groups.set(s.id.key, s);
    s.watch(() => this.lost(s));
  }

  private forget(s: ShimHandle): void {
    if (this.groups.get(s.id.key) === s) this.groups.delete(s.id.key);
    if (this.byAddress.get(s.id.address) === s) this.byAddress.delete(s.id.address);
  }

  /** Runs `<shim> start` and connects to the address it prints. */
  private async start(ident: Omit<ShimIdentity, 'address'>, h: RuntimeHandler, ns: string, id: string, dir: string): Promise<ShimHandle> {
    const sock = await shimStart(this.execContext(h, ns, id, dir), runtimeOptions(h));
    const have = this.byAddress.get(sock);
    if (have && have.usable) return have;
    const s = await ShimHandle.connect({ ...ident, address: sock }, 5000, this.o.rpcTimeoutMs, await readPidFile(join(dir, 'shim.pid')));
    s.attachLog(join(dir, 'log'), this.o.log);
    this.add(s);
    return s;
  }

  /** The shim for a new task: the group's live shim or a freshly started one. */
  async forTask(runtime: string, h: RuntimeHandler, ns: string, id: string, dir: string, group: string): Promise<ShimHandle> {
    const key = ShimSet.groupIdentity(h, runtime, ns, group);
    return this.withLock(key, async () => {
      const live = this.groups.get(key);
      if (live && live.state === 'examining') await live.verdict;
      if (live && live.state === 'ready' && live.client.isOpen) {
        live.addTask(id, dir);
        // What `start` would have written: lets recovery and `shim delete` find the shim.
        await writeFile(join(dir, 'address'), `unix://${live.id.address}`);
        if (live.pid) await writeFile(join(dir, 'shim.pid'), String(live.pid));
        return live;
      }
      const s = await this.start({ key, runtime, namespace: ns, binary: resolveShimBinary(h), restartable: h.type === BERTH_SHIM_TYPE }, h, ns, id, dir);
      this.groups.set(key, s);
      s.addTask(id, dir);
      return s;
    });
  }

  /**
   * After a berthd restart: the shim a bundle names (its `address` file). A berth-shim that no
   * longer answers is started again (it takes its containers over); undefined when no shim
   * can serve the task.
   */
  async load(runtime: string, h: RuntimeHandler, ns: string, id: string, dir: string, group: string, address: string): Promise<ShimHandle | undefined> {
    const sockPath = address.replace(/^(?:ttrpc\+)?unix:\/\//, '');
    const ident: ShimIdentity = {
      key: ShimSet.groupIdentity(h, runtime, ns, group),
      runtime,
      namespace: ns,
      binary: resolveShimBinary(h),
      address: sockPath,
      restartable: h.type === BERTH_SHIM_TYPE,
    };
    const s = await this.withLock(ident.key, async () => {
      const have = this.byAddress.get(sockPath) ?? (ident.restartable ? this.groups.get(ident.key) : undefined);
      if (have && have.usable) return have;
      try {
        const c = await ShimHandle.connect(ident, 2000, this.o.rpcTimeoutMs, await readPidFile(join(dir, 'shim.pid')));
        if (!c.pid) c.pid = (await c.task.connect({ id }).catch(() => undefined))?.shimPid || undefined;
        this.add(c);
        return c;
      } catch {
        await removeStaleSocket(sockPath);
      }
      if (!ident.restartable) return undefined;
      try {
        const started = await this.start(ident, h, ns, id, dir);
        this.o.log.info('started berth-shim again', { ns, address: started.id.address, pid: started.pid });
        return started;
      } catch (err) {
        this.o.log.warn('could not start berth-shim again', { ns, err });
        return undefined;
      }
    });
    s?.addTask(id, dir);
    return s;
  }

  /** The connection dropped while the shim was ready. */
  private lost(s: ShimHandle): void {
    if (this.closing) return;
    s.transition('examining');
    s.verdict = this.examine(s).then((ok) => {
      s.verdict = undefined;
      return ok;
    });
  }

  /** Reconnect if the shim still answers; start a berth-shim again; else it is dead. */
  private async examine(s: ShimHandle): Promise<boolean> {
    for (let i = 0; i < 3; i++) {
      if (s.pidAlive() === false) break;
      await new Promise((r) => setTimeout(r, 100 * (i + 1)));
      try {
        const c = await connectWithTimeout(s.id.address, 1000, this.o.rpcTimeoutMs);
        if (this.closing) {
          c.close();
          return false;
        }
        s.replaceClient(c);
        s.transition('ready');
        s.watch(() => this.lost(s));
        this.o.log.info('reconnected to shim', { address: s.id.address });
        return true;
      } catch {
        // retry
      }
    }
    const h = this.o.handlers[s.id.runtime];
    // A berth-shim is started again (it takes its containers over from disk). Its containers
    // run on under conmon meanwhile, so it is retried for a while rather than given up: only
    // a shim that cannot be started for ~30 s is declared dead.
    for (let attempt = 0; s.id.restartable && h && !this.closing && attempt < 6; attempt++) {
      const from = s.anyTask();
      if (!from) break; // hosts nothing: nothing to take over
      if (attempt > 0) await new Promise((r) => setTimeout(r, 500 * 2 ** (attempt - 1)));
      try {
        await removeStaleSocket(s.id.address);
        const sock = await shimStart(this.execContext(h, s.id.namespace, from.id, from.dir), runtimeOptions(h));
        const c = await connectWithTimeout(sock, 5000, this.o.rpcTimeoutMs);
        s.replaceClient(c);
        s.pid = await readPidFile(join(from.dir, 'shim.pid'));
        s.transition('ready');
        s.watch(() => this.lost(s));
        this.o.log.warn('berth-shim died; started it again', { address: sock, pid: s.pid, tasks: s.tasks.size });
        // Exits its successor reports are events; ask for the state of every task too, so an
        // exit whose event was lost is still seen.
        await this.o.onRestarted?.(s);
        return true;
      } catch (err) {
        this.o.log.warn('could not start berth-shim again', { address: s.id.address, attempt: attempt + 1, err });
      }
    }
    if (this.closing) return false;
    s.detach('dead');
    this.forget(s);
    this.o.log.warn('shim died', { address: s.id.address, pid: s.pid, tasks: [...s.tasks] });
    // Nothing answers on it any more: a stale socket file would only mislead the next `start`.
    await removeStaleSocket(s.id.address);
    await this.o.onDead(s);
    s.tasks.clear();
    return false;
  }

  /**
   * A task left its shim. A per-pod shim that hosts nothing is shut down; the namespace's
   * berth-shim stays (starting a Node process costs ~200 ms of CPU): close() ends it when idle.
   */
  async release(s: ShimHandle, id: string): Promise<void> {
    s.removeTask(id);
    if (this.o.shutdownIdleShims === false || s.id.restartable) return;
    await this.withLock(s.id.key, async () => {
      if (s.tasks.size > 0 || s.state !== 'ready') return;
      s.transition('retiring');
      this.forget(s);
      try {
        await s.task.shutdown({ id: '', now: false }, { timeoutMs: this.o.rpcTimeoutMs });
      } catch {
        // closing the connection is how a shim says goodbye
      }
      s.detach();
    });
  }

  /** Detaches from every shim; a berth-shim that hosts nothing is shut down first. */
  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(
      this.all()
        .filter((s) => s.id.restartable && s.tasks.size === 0 && s.state === 'ready')
        .map((s) => s.task.shutdown({ id: '', now: false }, { timeoutMs: 2000 }).catch(() => undefined)),
    );
    for (const s of this.all()) s.detach();
    this.byAddress.clear();
    this.groups.clear();
  }
}

export async function removeStaleSocket(path: string): Promise<void> {
  try {
    if ((await lstat(path)).isSocket()) await unlink(path);
  } catch {
    // already gone
  }
}
