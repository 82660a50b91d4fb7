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
 * conmon double-forks: the process spawned here exits at once and the monitor re-parents to
 * the nearest subreaper (the shim while it lives) — it is not the shim's Node child.
 */
import { readFileSync, statSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { BerthError, errors } from '../errors.js';
import { readErrorsSince, runcFailure, type Runc } from './runc.js';
import { spawnTracked } from './spawn.js';

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
  /** conmon's own pid (the monitor, after its double fork). */
  conmonPid: number;
}

function failure(o: ConmonCommon, verb: string, logOffset: number, m: SyncMessage | undefined, stderr: string): BerthError {
  const fromLog = readErrorsSince(o.runc.logFile, logOffset);
  // conmon forwards runc's stderr only when there was some; a runc killed by a signal (or
  // crashing) before it wrote anything leaves conmon with nothing to say: name runc, not conmon.
  const text =
    fromLog ||
    m?.message?.trim() ||
    stderr.trim() ||
    `${o.runc.binaryPath()} ${verb} ended without a result: runc logged no error and conmon reported no pid (runc, or conmon itself, was killed or crashed)`;
  return runcFailure(verb, text);
}

interface Spawned {
  /** Kills the monitor (and the spawned process) after a failure or a timeout. */
  kill: (pidFile: string) => void;
  /** Closes our ends of the pipes once they are no longer needed (no fd per container kept). */
  release: () => void;
  sync: SyncReader;
  start?: Writable;
  attach?: SyncReader;
  stderr: () => string;
  exited: Promise<number | null>;
}

function spawnConmon(binary: string, args: string[], cwd: string, withStart: boolean): Spawned {
  const env: NodeJS.ProcessEnv = { ...process.env, _OCI_SYNCPIPE: '3' };
  const stdio: Array<'ignore' | 'pipe'> = ['ignore', 'ignore', 'pipe', 'pipe'];
  if (withStart) {
    env._OCI_STARTPIPE = '4';
    env._OCI_ATTACHPIPE = '5';
    stdio.push('pipe', 'pipe');
  }
  const child = spawnTracked(binary, args, { cwd, env, stdio, detached: false });
  let err = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => {
    if (err.length < 65536) err += d;
  });
  const exited = new Promise<number | null>((r) => {
    child.once('exit', (code) => r(code));
    child.once('error', () => r(null));
  });
  const s = child.stdio as unknown as Array<Readable & Writable>;
  return {
    kill: (pidFile: string) => {
      try {
        child.kill('SIGKILL');
      } catch {
        // gone
      }
      try {
        const pid = Number(readFileSync(pidFile, 'utf8').trim());
        // Until the shim reaps it the monitor is its child: the pid cannot have been reused.
        if (Number.isInteger(pid) && pid > 0) process.kill(pid, 'SIGKILL');
      } catch {
        // no pid file yet, or gone
      }
    },
    release: () => {
      for (const x of s.slice(3)) (x as unknown as { destroy?: () => void } | null)?.destroy?.();
    },
    sync: new SyncReader(s[3] as Readable),
    start: withStart ? (s[4] as Writable) : undefined,
    attach: withStart ? new SyncReader(s[5] as Readable) : undefined,
    stderr: () => err,
    exited,
  };
}

function readPid(path: string): number {
  const n = Number(readFileSync(path, 'utf8').trim());
  if (!Number.isInteger(n) || n <= 0) throw errors.internal('shim.bad_pidfile', `${path}: no pid`);
  return n;
}

/** conmon + `runc create`: resolves once the container exists (created, not started). */
export async function conmonCreate(o: ConmonCreate, timeoutMs = 60_000): Promise<StartedConmon> {
  const offset = logOffset(o.runc.logFile);
  const c = spawnConmon(o.conmon, createArgs(o), o.procDir, false);
  const m = await c.sync.next(timeoutMs);
  if (!m || m.data <= 0) {
    // Timed out or failed: a monitor still working would finish the create later, unseen.
    if (!m) c.kill(o.conmonPidFile);
    await c.exited;
    c.release();
    throw failure(o, 'create', offset, m, c.stderr());
  }
  // The monitor is the shim's child (re-parented) only once the spawned process has exited.
  await c.exited;
  c.release();
  return { pid: m.data, conmonPid: readPid(o.conmonPidFile) };
}

/**
 * conmon --exec. With `attach`, `onAttachReady` runs once the attach socket exists and before
 * the runtime starts the process (connect there), then the process runs.
 */
export async function conmonExec(o: ConmonExec, onAttachReady?: () => Promise<void>, timeoutMs = 60_000): Promise<StartedConmon> {
  const offset = logOffset(o.runc.logFile);
  const c = spawnConmon(o.conmon, execArgs(o), o.procDir, o.attach);
  if (o.attach) {
    // conmon reads the start pipe once before it forks, once more before the runtime runs.
    c.start?.write('0');
    const ready = await c.attach?.next(timeoutMs);
    if (!ready) {
      c.kill(o.conmonPidFile);
      await c.exited;
      c.release();
      throw failure(o, 'exec', offset, undefined, c.stderr());
    }
    try {
      await onAttachReady?.();
    } finally {
      c.start?.end('1');
    }
  }
  const m = await c.sync.next(timeoutMs);
  if (!m || m.data <= 0) {
    if (!m) c.kill(o.conmonPidFile);
    await c.exited;
    c.release();
    throw failure(o, 'exec', offset, m, c.stderr());
  }
  await c.exited;
  c.release();
  return { pid: m.data, conmonPid: readPid(o.conmonPidFile) };
}

function logOffset(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}
