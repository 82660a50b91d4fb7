/**
 * runc driver: one exec of the runc binary per operation.
 *
 * Every call runs `runc --root <root> --log <logFile> --log-format json <verb> …` (except
 * `start` of a runc container, done through runc's exec fifo: see start()). When runc
 * fails, the error handed to the caller carries runc's own text verbatim: the "error"-level
 * entries runc appended to the json log during this call (falling back to its stderr).
 */
import { openSync, closeSync, fstatSync, readSync, readFileSync, writeFileSync, mkdirSync, accessSync, existsSync, constants } from 'node:fs';
import { open, unlink } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { SpawnOptions } from 'node:child_process';
import { BerthError, berthError, errors } from '../errors.js';
import { runTracked } from './spawn.js';

export interface RuncOptions {
  /** runc binary (path or name on PATH). */
  binary?: string;
  /** --root: runc's state directory (one per namespace). */
  root: string;
  /** --log: json log file shared by calls of this driver (e.g. <bundle>/log.json). */
  logFile: string;
  /** --systemd-cgroup */
  systemdCgroup?: boolean;
}

/** The file descriptors a container process gets as stdin/stdout/stderr ('ignore' → /dev/null). */
export type StdioFds = [number | 'ignore', number | 'ignore', number | 'ignore'];

export interface CreateOpts {
  bundle: string;
  pidFile: string;
  consoleSocket?: string;
  noPivot?: boolean;
  noNewKeyring?: boolean;
  stdio: StdioFds;
}

export interface ExecOpts {
  processFile: string;
  pidFile: string;
  consoleSocket?: string;
  stdio: StdioFds;
}

export interface CheckpointOpts {
  imagePath: string;
  workPath?: string;
  leaveRunning?: boolean;
  tcpEstablished?: boolean;
  externalUnixSockets?: boolean;
  shellJob?: boolean;
  fileLocks?: boolean;
}

/** `runc state` output (the fields berth uses). */
export interface RuncState {
  id: string;
  pid: number;
  status: 'creating' | 'created' | 'running' | 'pausing' | 'paused' | 'stopped' | string;
  bundle: string;
  rootfs: string;
  created: string;
  annotations?: Record<string, string>;
}

/** Map runc's error text onto the error catalogue. */
export function classifyRuncError(text: string): BerthError['kind'] {
  if (/container .*does not exist|container does not exist/i.test(text)) return 'NotFound';
  if (/not running|already paused|not paused|is paused|container .* is stopped|cannot (?:start|pause|resume|exec)|already exists/i.test(text)) {
    return /already exists/i.test(text) ? 'AlreadyExists' : 'FailedPrecondition';
  }
  return 'Internal';
}

const RUNC_CODES = {
  NotFound: 'runc.not_found',
  AlreadyExists: 'runc.already_exists',
  FailedPrecondition: 'runc.wrong_state',
  Internal: 'runc.failed',
} as const;

/** The error for a failed runc verb: runc's own text, kind and code from what it says. */
export function runcFailure(verb: string, text: string): BerthError {
  const kind = classifyRuncError(text);
  return berthError(RUNC_CODES[kind as keyof typeof RUNC_CODES] ?? 'runc.failed', `runc ${verb}: ${text}`);
}

export class Runc {
  readonly binary: string;
  readonly root: string;
  readonly logFile: string;
  readonly systemdCgroup: boolean;

  constructor(opts: RuncOptions) {
    this.binary = opts.binary ?? 'runc';
    this.root = opts.root;
    this.logFile = opts.logFile;
    this.systemdCgroup = opts.systemdCgroup ?? false;
    mkdirSync(this.root, { recursive: true, mode: 0o711 });
  }

  /** The binary as an absolute path (conmon execs it without a PATH search). */
  binaryPath(): string {
    if (this.binary.includes('/')) return this.binary;
    for (const d of (process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
      const p = join(d || '.', this.binary);
      try {
        accessSync(p, constants.X_OK);
        return p;
      } catch {
        // not here
      }
    }
    return this.binary;
  }

  globalArgs(): string[] {
    const a = ['--root', this.root, '--log', this.logFile, '--log-format', 'json'];
    if (this.systemdCgroup) a.push('--systemd-cgroup');
    return a;
  }

  /**
   * Run one runc verb. On a non-zero exit, throws with runc's own error text.
   * `stdio` lets create/exec hand the container its fds (runc passes its own stdio on).
   */
  private async run(verb: string, args: string[], opts: { stdio?: SpawnOptions['stdio']; input?: Uint8Array; timeoutMs?: number } = {}): Promise<string> {
    const offset = logSize(this.logFile);
    const r = await runTracked(this.binary, [...this.globalArgs(), verb, ...args], {
      stdio: opts.stdio,
      input: opts.input,
      timeoutMs: opts.timeoutMs,
    });
    if (r.code === 0) return r.stdout;
    const fromLog = readErrorsSince(this.logFile, offset);
    const text = fromLog || r.stderr.trim() || `runc ${verb} exited with status ${r.code}`;
    throw runcFailure(verb, text);
  }

  async create(id: string, o: CreateOpts): Promise<number> {
    const args = ['--bundle', o.bundle, '--pid-file', o.pidFile];
    if (o.consoleSocket) args.push('--console-socket', o.consoleSocket);
    if (o.noPivot) args.push('--no-pivot');
    if (o.noNewKeyring) args.push('--no-new-keyring');
    args.push(id);
    await this.run('create', args, { stdio: o.stdio });
    return readPidFile(o.pidFile);
  }

  /**
   * Starts a created container. With runc this needs no runc process: what `runc start` does
   * for a created container (runc 1.1, libcontainer's exec()) is open `<root>/<id>/exec.fifo`
   * for reading — runc init, its setup done, waits opening it for writing — read the byte init
   * writes, and remove the fifo (from then on runc reports the container running); init execs
   * the process as the fifo closes. Doing that here saves a runc exec (a Go binary's start,
   * ~10 ms) on every start. Another runtime binary, no fifo, or no live init: `runc start`
   * itself, for its own behaviour and error text.
   */
  async start(id: string, initPid?: number): Promise<void> {
    const fifo = join(this.root, id, 'exec.fifo');
    if (initPid && basename(this.binary) === 'runc' && existsSync(fifo) && processAlive(initPid)) {
      let started: boolean;
      try {
        started = await readExecFifo(fifo, initPid);
      } catch {
        started = false;
      }
      if (started) return;
      // Init died (or the fifo went) meanwhile: runc says what the container is now.
    }
    await this.run('start', [id]);
  }

  /** `runc exec --detach`: returns the pid of the new process. */
  async exec(id: string, o: ExecOpts): Promise<number> {
    const args = ['--process', o.processFile, '--detach', '--pid-file', o.pidFile];
    if (o.consoleSocket) args.push('--console-socket', o.consoleSocket);
    args.push(id);
    await this.run('exec', args, { stdio: o.stdio });
    return readPidFile(o.pidFile);
  }

  async kill(id: string, signal: number, all = false): Promise<void> {
    const args = all ? ['--all', id, String(signal)] : [id, String(signal)];
    await this.run('kill', args);
  }

  async delete(id: string, force = false): Promise<void> {
    await this.run('delete', force ? ['--force', id] : [id]);
  }

  async state(id: string): Promise<RuncState> {
    const out = await this.run('state', [id]);
    return JSON.parse(out) as RuncState;
  }

  /** Pids of all processes in the container (host pid namespace view). */
  async ps(id: string): Promise<number[]> {
    const out = await this.run('ps', ['--format', 'json', id]);
    const parsed = JSON.parse(out.trim() || '[]') as number[] | null;
    return parsed ?? [];
  }

  async pause(id: string): Promise<void> {
    await this.run('pause', [id]);
  }

  async resume(id: string): Promise<void> {
    await this.run('resume', [id]);
  }

  /** `runc update --resources -` with an OCI LinuxResources object. */
  async update(id: string, resources: unknown): Promise<void> {
    await this.run('update', ['--resources', '-', id], {
      stdio: ['pipe', 'pipe', 'pipe'],
      input: Buffer.from(JSON.stringify(resources)),
    });
  }

  async checkpoint(id: string, o: CheckpointOpts): Promise<void> {
    const args = ['--image-path', o.imagePath];
    if (o.workPath) args.push('--work-path', o.workPath);
    if (o.leaveRunning) args.push('--leave-running');
    if (o.tcpEstablished) args.push('--tcp-established');
    if (o.externalUnixSockets) args.push('--ext-unix-sk');
    if (o.shellJob) args.push('--shell-job');
    if (o.fileLocks) args.push('--file-locks');
    args.push(id);
    try {
      await this.run('checkpoint', args, { timeoutMs: 120_000 });
    } catch (err) {
      // CRIU writes its reason into dump.log under the work path; runc only says "criu failed".
      if (err instanceof BerthError) {
        const criu = readCriuLogTail(join(o.workPath ?? o.imagePath, 'dump.log'));
        const msg = criu ? `${err.message}; criu: ${criu}` : err.message;
        throw new BerthError('FailedPrecondition', 'runc.checkpoint_failed', msg, { cause: err });
      }
      throw err;
    }
  }
}

/** A process that exists and is neither a zombie nor dead (what runc counts as alive). */
function processAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/**
 * Opens the exec fifo (blocks until runc init opens its end), reads init's byte, removes the
 * fifo. False when init closed it without writing. Should init die before it opens its end,
 * the open would wait forever: then an end opened here for writing and closed at once releases
 * it (the read sees no data).
 */
export async function readExecFifo(fifo: string, initPid: number): Promise<boolean> {
  const opening = open(fifo, constants.O_RDONLY);
  const watch = setInterval(() => {
    if (processAlive(initPid)) return;
    try {
      closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
    } catch {
      // no reader waiting (the open has returned) or no fifo: nothing to release
    }
  }, 100);
  let fh: Awaited<typeof opening>;
  try {
    fh = await opening;
  } finally {
    clearInterval(watch);
  }
  let data: Buffer;
  try {
    data = await fh.readFile();
  } finally {
    await fh.close();
  }
  if (data.length === 0) return false;
  await unlink(fifo);
  return true;
}

function logSize(file: string): number {
  try {
    const fd = openSync(file, 'r');
    try {
      return fstatSync(fd).size;
    } finally {
      closeSync(fd);
    }
  } catch {
    return 0;
  }
}

/** The "error" entries runc wrote to its json log after `offset`, joined with "; ". */
export function readErrorsSince(file: string, offset: number): string {
  let text: string;
  try {
    const fd = openSync(file, 'r');
    try {
      const size = fstatSync(fd).size;
      const len = Math.min(size - offset, 1 << 20);
      if (len <= 0) return '';
      const buf = Buffer.alloc(len);
      readSync(fd, buf, 0, len, size - len);
      text = buf.toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return '';
  }
  const msgs: string[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      const e = JSON.parse(line) as { level?: string; msg?: string };
      if ((e.level === 'error' || e.level === 'fatal') && e.msg && !msgs.includes(e.msg)) msgs.push(e.msg);
    } catch {
      // a partial line: ignore
    }
  }
  return msgs.join('; ');
}

function readCriuLogTail(file: string): string {
  try {
    const fd = openSync(file, 'r');
    try {
      const size = fstatSync(fd).size;
      const len = Math.min(size, 4096);
      const buf = Buffer.alloc(len);
      readSync(fd, buf, 0, len, size - len);
      const lines = buf
        .toString('utf8')
        .split('\n')
        .filter((l) => /Error|error|fail/.test(l));
      return lines.slice(-3).join(' | ').trim();
    } finally {
      closeSync(fd);
    }
  } catch {
    return '';
  }
}

function readPidFile(file: string): number {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(32);
    const n = readSync(fd, buf, 0, 32, 0);
    const pid = Number.parseInt(buf.subarray(0, n).toString('utf8').trim(), 10);
    if (!Number.isInteger(pid) || pid <= 0) throw errors.internal('runc.bad_pid_file', `bad pid file ${file}`);
    return pid;
  } finally {
    closeSync(fd);
  }
}

/** What Create records in the bundle so `berth-shim delete` can find the container without the shim. */
export interface RuncRecord {
  root: string;
  binary: string;
  systemdCgroup: boolean;
}
export const RUNC_RECORD = '.berth-runc.json';

export function writeRuncRecord(bundle: string, runc: Runc): void {
  const rec: RuncRecord = { root: runc.root, binary: runc.binary, systemdCgroup: runc.systemdCgroup };
  writeFileSync(join(bundle, RUNC_RECORD), JSON.stringify(rec));
}

/** True when the effective capability set contains CAP_SYS_RESOURCE (bit 24). */
export function hasCapSysResource(statusText: string): boolean {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(statusText);
  if (!m || !m[1]) return false;
  return (BigInt('0x' + m[1]) & (1n << 24n)) !== 0n;
}

/**
 * Without CAP_SYS_RESOURCE, a process may not lower its oom_score_adj below its current value,
 * and runc's init then dies half-way ("can't get final child's PID from pipe"). Raise a too-low
 * process.oomScoreAdj in the bundle's config.json to the shim's own value. Returns the value
 * written, or undefined when nothing changed.
 */
export function clampOomScoreAdj(config: { process?: { oomScoreAdj?: number } }, own: number, canLower: boolean): number | undefined {
  const want = config.process?.oomScoreAdj;
  if (canLower || want === undefined || !config.process || want >= own) return undefined;
  config.process.oomScoreAdj = own;
  return own;
}

/** Apply clampOomScoreAdj to <bundle>/config.json in place, reading our own /proc values. */
export function clampBundleOomScoreAdj(configPath: string, configText: string, procStatus: string, ownAdj: number): boolean {
  const config = JSON.parse(configText) as { process?: { oomScoreAdj?: number } };
  const changed = clampOomScoreAdj(config, ownAdj, hasCapSysResource(procStatus));
  if (changed === undefined) return false;
  writeFileSync(configPath, JSON.stringify(config));
  return true;
}
