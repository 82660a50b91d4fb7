/**
 * Starting conmon, the monitor that becomes the parent of each container init and each exec.
 *
 * conmon (api version 1) runs `runc create` (or `runc exec --detach`) itself, holds the
 * process's stdio (CRI log with the k8s-file driver, attach socket, ctl FIFO), writes the
 * exit code to <procdir>/exit (persist dir) and `oom` when the cgroup saw an OOM kill, and
 * outlives the shim. Its sync pipe (_OCI_SYNCPIPE) reports `{"data": pid}` once the process
 * exists, or `{"data": -1, "message": "<runtime stderr>"}` when the runtime failed; for exec a
 * second `{"data": exit}` follows. With --exec-attach conmon waits on _OCI_STARTPIPE after it
 * created the attach socket (announced on _OCI_ATTACHPIPE), so an attacher loses no output.
 *
 * conmon runs with --sync (it forks once, for the runtime, instead of double-forking to
 * daemonize) and is started with posix_spawn: the process started here is the monitor, a
 * child of the shim (not of libuv), reaped by the shim's Reaper; if the shim dies it
 * re-parents to the nearest subreaper as before. Per exec that is one Node-sized fork and
 * one conmon fork + exit fewer.
 */
import { statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { constants as osConstants } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import type { BerthError } from '../errors.js';
import { readErrorsSince, runcFailure, type Runc } from './runc.js';
import { closeFd, pipe, spawnRaw } from './libc.js';
import type { ExitInfo, Reaper } from './reaper.js';

export interface ConmonCommon {
  /** conmon binary. */
  conmon: string;
  runc: Runc;
  containerId: string;
  cuuid: string;
  /** The process dir: persist dir, exit dir (exec), attach socket dir (-b for exec). */
  procDir: string;
  /** Short symlink dir for attach sockets (--socket-dir-path). */
  socketDir: string;
  terminal: boolean;
  /** Open a stdin pipe (-i); `stdinOnce`: close it when the first attach session ends. */
  stdin: boolean;
  stdinOnce: boolean;
  /** CRI log path (k8s-file driver) or undefined (output only to attach sessions). */
  logPath?: string;
  logSizeMax?: number;
  pidFile: string;
  conmonPidFile: string;
  /** Reaps the monitor, the shim's child (see spawnConmon). */
  reaper: Pick<Reaper, 'watch'>;
}

export interface ConmonCreate extends ConmonCommon {
  bundle: string;
  exitDir: string;
  noPivot?: boolean;
  noNewKeyring?: boolean;
}

export interface ConmonExec extends ConmonCommon {
  processFile: string;
  /** Wait for the caller to attach before the runtime runs (see attached()). */
  attach: boolean;
}

function commonArgs(o: ConmonCommon): string[] {
  const rt = o.runc.globalArgs();
  const a = [
    '--api-version',
    '1',
    '-c',
    o.containerId,
    '-u',
    o.cuuid,
    '-n',
    o.containerId,
    '-r',
    o.runc.binaryPath(),
    '-p',
    o.pidFile,
    '-P',
    o.conmonPidFile,
    '--persist-dir',
    o.procDir,
    '--socket-dir-path',
    o.socketDir,
    '-l',
    o.logPath ? `k8s-file:${o.logPath}` : 'none',
    '--log-level',
    'error',
    '--syslog',
  ];
  for (const r of rt) a.push('--runtime-arg', r);
  if (o.logSizeMax && o.logSizeMax > 0) a.push('--log-size-max', String(o.logSizeMax));
  if (o.terminal) a.push('-t');
  if (o.stdin) a.push('-i');
  if (o.stdin && !o.stdinOnce) a.push('--leave-stdin-open');
  return a;
}

export function createArgs(o: ConmonCreate): string[] {
  const a = commonArgs(o);
  a.push('-b', o.bundle, '--exit-dir', o.exitDir);
  if (o.noPivot) a.push('--no-pivot');
  if (o.noNewKeyring) a.push('--no-new-keyring');
  return a;
}

export function execArgs(o: ConmonExec): string[] {
  const a = commonArgs(o);
  a.push('-e', '--exec-process-spec', o.processFile, '-b', o.procDir, '--exit-dir', o.procDir);
  if (o.attach) a.push('--exec-attach');
  return a;
}

/** One JSON line of conmon's sync pipe. */
export interface SyncMessage {
  data: number;
  message?: string;
}

/** Reads conmon's newline-delimited JSON messages from a pipe. */
export class SyncReader {
  private buf = '';
  private readonly queue: SyncMessage[] = [];
  private waiters: Array<(m: SyncMessage | undefined) => void> = [];
  private ended = false;

  /** conmon closed its end (it exited, or was killed), as opposed to a wait that timed out. */
  get closed(): boolean {
    return this.ended;
  }

  constructor(stream: Readable) {
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => {
      this.buf += d;
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i).trim();
        this.buf = this.buf.slice(i + 1);
        if (!line) continue;
        try {
          const m = JSON.parse(line) as SyncMessage;
          if (typeof m.data === 'number') this.push(m);
        } catch {
          // not a message: ignore
        }
      }
    });
    const end = (): void => {
      this.ended = true;
      for (const w of this.waiters.splice(0)) w(undefined);
    };
    stream.on('end', end);
    stream.on('close', end);
    stream.on('error', end);
  }

  private push(m: SyncMessage): void {
    const w = this.waiters.shift();
    if (w) w(m);
    else this.queue.push(m);
  }

  /** The next message, or undefined once conmon closed the pipe. */
  next(timeoutMs: number): Promise<SyncMessage | undefined> {
    const m = this.queue.shift();
    if (m) return Promise.resolve(m);
    if (this.ended) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        resolve(undefined);
      }, timeoutMs);
      const w = (x: SyncMessage | undefined): void => {
        clearTimeout(t);
        resolve(x);
      };
      this.waiters.push(w);
    });
  }
}

export interface StartedConmon {
  /** The container (or exec) pid. */
  pid: number;
  /** conmon's own pid (the monitor: the process the shim spawned). */
  conmonPid: number;
}

/** How the monitor ended, when a runtime call gave no result. */
interface MonitorEnd {
  pid: number;
  /** The shim killed it (a timeout): its end says nothing of what went wrong. */
  killedByUs: boolean;
  exit?: ExitInfo;
}

function failure(o: ConmonCommon, verb: string, logOffset: number, m: SyncMessage | undefined, stderr: string, end: MonitorEnd): BerthError {
  const fromLog = readErrorsSince(o.runc.logFile, logOffset);
  // conmon forwards runc's stderr only when there was some; a runc killed by a signal (or
  // crashing) before it wrote anything leaves conmon with nothing to say. conmon is the
  // shim's child, so its own end tells the two apart: killed by a signal → conmon died;
  // exited → it outlived a runtime that ended without a word.
  const text = fromLog || m?.message?.trim() || stderr.trim() || silentEnd(o, verb, end);
  return runcFailure(verb, text);
}

function silentEnd(o: ConmonCommon, verb: string, end: MonitorEnd): string {
  const what = `${o.runc.binaryPath()} ${verb} ended without a result`;
  if (end.killedByUs) return `${what}: conmon (pid ${end.pid}) reported no pid in time and was killed`;
  const e = end.exit;
  if (e?.signal !== undefined)
    return `${what}: its monitor conmon (pid ${end.pid}) was killed by signal ${e.signal} (${signalName(e.signal)}) before it reported a pid`;
  if (e && e.status !== 255)
    return `${what}: runc logged no error and conmon (pid ${end.pid}) exited with status ${e.status} without a pid (runc was killed or crashed)`;
  return `${what}: runc logged no error and conmon (pid ${end.pid}) reported no pid (runc or conmon was killed or crashed)`;
}

function signalName(n: number): string {
  for (const [name, v] of Object.entries(osConstants.signals)) if (v === n) return name;
  return `signal ${n}`;
}

interface Spawned {
  /** The monitor's pid (conmon runs with --sync: the process spawned is the monitor). */
  pid: number;
  /** Kills the monitor (and the runtime it started) after a failure or a timeout. */
  kill: () => void;
  /** Closes our ends of the pipes once they are no longer needed (no fd per container kept). */
  release: () => void;
  sync: SyncReader;
  start?: Writable;
  attach?: SyncReader;
  stderr: () => string;
  /** Resolves once the monitor exited and was reaped (failure paths only: on success the container's reaper watch takes it). */
  exited: () => Promise<ExitInfo>;
}

/** A pipe of ours as a libuv stream (the fd is owned by the stream from here on). */
function pipeStream(fd: number, readable: boolean): net.Socket {
  const s = new net.Socket({ fd, readable, writable: !readable });
  s.on('error', () => undefined);
  return s;
}

/**
 * Starts conmon with posix_spawn (no fork of the shim: see spawnRaw) and `--sync`: conmon
 * then forks once (for the runtime) instead of double-forking, and the process spawned here is
 * the monitor itself, the shim's child, reaped by the shim's Reaper. conmon writes no
 * conmon-pid file with --sync: it is written here, before anything else can happen.
 */
function spawnConmon(o: ConmonCommon, verb: string, args: string[], withStart: boolean): Spawned {
  const env: string[] = [];
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith('_OCI_')) env.push(`${k}=${v}`);
  }
  env.push('_OCI_SYNCPIPE=3');
  const ours: number[] = [];
  const theirs: number[] = [];
  const pipeFor = (childReads: boolean): number => {
    const [r, w] = pipe();
    ours.push(childReads ? w : r);
    theirs.push(childReads ? r : w);
    return childReads ? r : w;
  };
  let pid: number;
  try {
    const errW = pipeFor(false);
    const syncW = pipeFor(false);
    const fds: Array<number | 'null'> = ['null', 'null', errW, syncW];
    if (withStart) {
      env.push('_OCI_STARTPIPE=4', '_OCI_ATTACHPIPE=5');
      fds.push(pipeFor(true), pipeFor(false));
    }
    pid = spawnRaw(o.conmon, [o.conmon, ...args, '--sync'], env, { cwd: o.procDir, fds });
  } catch (err) {
    for (const fd of [...ours, ...theirs]) closeFd(fd);
    throw runcFailure(verb, `cannot start conmon ${o.conmon}: ${(err as Error).message}`);
  }
  for (const fd of theirs) closeFd(fd);
  try {
    writeFileSync(o.conmonPidFile, String(pid));
  } catch (err) {
    // No record of the monitor: it must not run on unseen.
    process.kill(pid, 'SIGKILL');
    o.reaper.watch(pid, () => undefined);
    for (const fd of ours) closeFd(fd);
    throw runcFailure(verb, `cannot write ${o.conmonPidFile}: ${(err as Error).message}`);
  }
  const streams: { sync: net.Socket; err: net.Socket; start?: net.Socket; attach?: net.Socket } = {
    err: pipeStream(ours[0]!, true),
    sync: pipeStream(ours[1]!, true),
    ...(withStart ? { start: pipeStream(ours[2]!, false), attach: pipeStream(ours[3]!, true) } : {}),
  };
  let err = '';
  streams.err.setEncoding('utf8');
  streams.err.on('data', (d: string) => {
    if (err.length < 65536) err += d;
  });
  let exited: Promise<ExitInfo> | undefined;
  return {
    pid,
    kill: () => {
      try {
        // Until the shim reaps it the monitor is its child: the pid cannot have been reused.
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    },
    release: () => {
      for (const x of Object.values(streams)) x?.destroy();
    },
    sync: new SyncReader(streams.sync),
    start: streams.start,
    attach: streams.attach ? new SyncReader(streams.attach) : undefined,
    stderr: () => err,
    exited: () => (exited ??= new Promise<ExitInfo>((r) => o.reaper.watch(pid, r))),
  };
}

/** conmon + `runc create`: resolves once the container exists (created, not started). */
export async function conmonCreate(o: ConmonCreate, timeoutMs = 60_000): Promise<StartedConmon> {
  const offset = logOffset(o.runc.logFile);
  const c = spawnConmon(o, 'create', createArgs(o), false);
  const m = await c.sync.next(timeoutMs);
  if (!m || m.data <= 0) {
    // Timed out or failed: a monitor still working would finish the create later, unseen.
    const killedByUs = !m && !c.sync.closed;
    if (!m) c.kill();
    const exit = await c.exited();
    c.release();
    throw failure(o, 'create', offset, m, c.stderr(), { pid: c.pid, killedByUs, exit });
  }
  c.release();
  return { pid: m.data, conmonPid: c.pid };
}

/**
 * conmon --exec. With `attach`, `onAttachReady` runs once the attach socket exists and before
 * the runtime starts the process (connect there), then the process runs.
 */
export async function conmonExec(o: ConmonExec, onAttachReady?: () => Promise<void>, timeoutMs = 60_000): Promise<StartedConmon> {
  const offset = logOffset(o.runc.logFile);
  const c = spawnConmon(o, 'exec', execArgs(o), o.attach);
  if (o.attach) {
    // conmon reads the start pipe once before it forks, once more before the runtime runs.
    c.start?.write('0');
    const ready = await c.attach?.next(timeoutMs);
    if (!ready) {
      const killedByUs = !c.attach?.closed;
      c.kill();
      const exit = await c.exited();
      c.release();
      throw failure(o, 'exec', offset, undefined, c.stderr(), { pid: c.pid, killedByUs, exit });
    }
    try {
      await onAttachReady?.();
    } finally {
      c.start?.end('1');
    }
  }
  const m = await c.sync.next(timeoutMs);
  if (!m || m.data <= 0) {
    const killedByUs = !m && !c.sync.closed;
    if (!m) c.kill();
    const exit = await c.exited();
    c.release();
    throw failure(o, 'exec', offset, m, c.stderr(), { pid: c.pid, killedByUs, exit });
  }
  c.release();
  return { pid: m.data, conmonPid: c.pid };
}

function logOffset(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}
