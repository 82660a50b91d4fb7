/**
 * Reaping container processes without stealing Node's own children.
 *
 * The shim is a child subreaper (PR_SET_CHILD_SUBREAPER), so when `runc create` / `runc exec`
 * exit, the container init and exec processes they started re-parent to the shim. Node never
 * waits for processes it did not spawn, so the shim must reap them itself. It must not call
 * waitpid(-1): libuv reaps its own children (the runc invocations) with waitpid(pid) per pid
 * it spawned, and a wildcard wait would take their exit statuses away from it.
 *
 * Design:
 *  1. `watch(pid)` registers a pid the shim learnt from runc's --pid-file. It immediately tries
 *     waitpid(pid, WNOHANG): a process that already died is a zombie until reaped, so there is
 *     no window in which an exit can be lost between runc returning and the registration.
 *  2. On every SIGCHLD (process.on('SIGCHLD'); libuv supports several watchers of one signal,
 *     its own child watcher keeps working) each registered pid is polled with waitpid(pid,
 *     WNOHANG). Signals coalesce, so every pid is polled, not just one.
 *  3. A periodic sweep (every 2 s) polls registered pids again (belt and braces for a missed
 *     signal) and reaps zombies that are our children but neither registered nor spawned by
 *     Node (spawnTracked keeps that set): e.g. daemons double-forked inside a container that
 *     shares the host pid namespace, which would otherwise pile up as zombies. Zombie children
 *     are found by reading /proc/<pid>/stat (state 'Z', ppid == our pid). The sweep is
 *     suspended while a create/exec is in flight (hold()), whose pid is not registered yet.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { decodeWaitStatus, reapPid, reapPidStatus, setChildSubreaper } from './libc.js';
import { isNodeChild } from './spawn.js';

export interface ExitInfo {
  pid: number;
  /** Exit code, or 128 + the signal that ended it (the shell's convention, as containerd reports). */
  status: number;
  /** The signal that ended it, when one did (absent for an exit, and for a pid not our child). */
  signal?: number;
  exitedAt: Date;
}

type Listener = (e: ExitInfo) => void;

export class Reaper {
  private readonly watched = new Map<number, Listener>();
  private timer: NodeJS.Timeout | undefined;
  private readonly onSigchld = (): void => this.poll();
  private started = false;
  /** create/exec calls in flight: their new pid is not known yet, so the sweep must wait. */
  private holds = 0;

  /** Become subreaper and begin listening for SIGCHLD. Idempotent. */
  start(sweepMs = 2000): void {
    if (this.started) return;
    this.started = true;
    setChildSubreaper();
    process.on('SIGCHLD', this.onSigchld);
    this.timer = setInterval(() => {
      this.poll();
      this.sweepZombies();
    }, sweepMs);
    this.timer.unref();
  }

  stop(): void {
    if (!this.started) return;
    this.started = false;
    process.off('SIGCHLD', this.onSigchld);
    if (this.timer) clearInterval(this.timer);
  }

  /** Resolve (via the listener) when `pid` exits. The pid must be a child of this process. */
  watch(pid: number, listener: Listener): void {
    this.watched.set(pid, listener);
    this.check(pid);
  }

  unwatch(pid: number): void {
    this.watched.delete(pid);
  }

  get size(): number {
    return this.watched.size;
  }

  /** Poll every registered pid once. */
  poll(): void {
    for (const pid of [...this.watched.keys()]) this.check(pid);
  }

  private check(pid: number): void {
    const listener = this.watched.get(pid);
    if (!listener) return;
    const r = reapPidStatus(pid);
    if (r === undefined) return;
    this.watched.delete(pid);
    // null: not our child (never re-parented to us, or already reaped): report as status 255,
    // the convention containerd uses for an exit it could not observe.
    if (r === null) return listener({ pid, status: 255, exitedAt: new Date() });
    const sig = r & 0x7f;
    listener({ pid, status: decodeWaitStatus(r), ...(sig !== 0 ? { signal: sig } : {}), exitedAt: new Date() });
  }

  /**
   * Run `fn` (a runc create/exec) with the zombie sweep suspended: the process it starts may
   * exit before its pid file has been read and registered, and the sweep must not take that
   * exit status.
   */
  async hold<T>(fn: () => Promise<T>): Promise<T> {
    this.holds++;
    try {
      return await fn();
    } finally {
      this.holds--;
    }
  }

  /** Reap zombie children that nobody is watching and that Node did not spawn. */
  sweepZombies(): void {
    if (this.holds > 0) return;
    const self = process.pid;
    let entries: string[];
    try {
      entries = readdirSync('/proc');
    } catch {
      return;
    }
    for (const e of entries) {
      const c = e.charCodeAt(0);
      if (c < 48 || c > 57) continue;
      const pid = Number(e);
      if (this.watched.has(pid) || isNodeChild(pid)) continue;
      let stat: string;
      try {
        stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      } catch {
        continue;
      }
      // "pid (comm) S ppid …" — comm may contain spaces and parens, so parse after the last ')'.
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (rest[0] === 'Z' && Number(rest[1]) === self) reapPid(pid);
    }
  }
}
