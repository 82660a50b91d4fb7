/**
 * Shared plumbing for benchmarks that start a CRI daemon in a temp dir: waiting for the CRI
 * socket, stopping the process, and unmounting whatever it left mounted under its dir.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { connectCri } from '../src/cri/server/client.js';

export interface DaemonHandle {
  name: string;
  socket: string;
  pid: number;
  dir: string;
  logFile: string;
  stop(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls the CRI Version RPC until the daemon answers. */
export async function waitForCri(socket: string, child: ChildProcess, logFile: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastErr = '';
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`daemon exited (${child.exitCode ?? child.signalCode}) before serving CRI:\n${tail(logFile)}`);
    }
    const cri = connectCri(socket);
    try {
      await cri.runtime.version({ version: '0.1.0' }, { timeoutMs: 1000 });
      return;
    } catch (err) {
      lastErr = (err as Error).message;
    } finally {
      cri.close();
    }
    await sleep(100);
  }
  throw new Error(`CRI on ${socket} did not answer in ${timeoutMs} ms (${lastErr}):\n${tail(logFile)}`);
}

export function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** SIGTERM, then SIGKILL after a grace period; resolves once the process is gone. */
export async function stopProcess(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(t);
}

/** Unmounts every mount point under `dir` (deepest first), then removes the dir. */
export function cleanupDir(dir: string): void {
  const prefix = dir.endsWith('/') ? dir : dir + '/';
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m): m is string => m !== undefined && (m === dir || m.startsWith(prefix)))
    .map((m) => m.replace(/\\040/g, ' '))
    .sort((a, b) => b.length - a.length);
  for (const m of mounts) spawnSync('umount', ['-l', m], { stdio: 'ignore' });
  rmSync(dir, { recursive: true, force: true });
}

/** Peak resident set size (VmHWM) of a process in KiB, or 0 when unknown. */
export function peakRssKiB(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/**
 * CPU seconds (user + system, including waited-for children) a process has used so far.
 * Less sensitive than wall time to I/O contention from other work on the machine.
 */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start at field 3 (state).
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]); // utime stime cutime cstime
    return ticks / 100; // USER_HZ is 100 on Linux
  } catch {
    return NaN;
  }
}

export interface LaunchSpec {
  name: string;
  /** The daemon's temp dir: removed (after unmounting) when it stops or fails to start. */
  dir: string;
  command: string;
  args: string[];
  /** CRI socket the daemon serves once ready. */
  socket: string;
  logName: string;
  cwd?: string;
}

/** Spawns a CRI daemon logging into its dir, waits for its socket to answer, returns a handle. */
export async function launchDaemon(l: LaunchSpec): Promise<DaemonHandle> {
  const logFile = join(l.dir, l.logName);
  const fd = openSync(logFile, 'a');
  const child = spawn(l.command, l.args, { stdio: ['ignore', fd, fd], ...(l.cwd ? { cwd: l.cwd } : {}) });
  closeSync(fd);
  child.once('error', () => undefined);
  const stop = async (): Promise<void> => {
    await stopProcess(child);
    cleanupDir(l.dir);
  };
  try {
    await waitForCri(l.socket, child, logFile);
  } catch (err) {
    await stop();
    throw err;
  }
  return { name: l.name, socket: l.socket, pid: child.pid ?? 0, dir: l.dir, logFile, stop };
}

/** The node flags on a launcher's `#!/usr/bin/env -S node …` line. */
export function shebangNodeFlags(launcher: string): string[] {
  const first = readFileSync(launcher, 'utf8').split('\n', 1)[0] ?? '';
  const m = /^#!\S*env -S node (.*)$/.exec(first);
  return m ? m[1]!.split(' ').filter(Boolean) : [];
}

/**
 * How to start bin/berthd: as is, or, with BENCH_BERTHD_NODE_FLAGS set (e.g. "--cpu-prof
 * --cpu-prof-dir=/tmp/prof"; NODE_OPTIONS refuses --cpu-prof), through node with the
 * launcher's shebang flags plus those.
 */
export function berthdArgv(launcher: string, args: string[]): string[] {
  const nodeFlags = (process.env.BENCH_BERTHD_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  return nodeFlags.length ? [process.execPath, ...shebangNodeFlags(launcher), ...nodeFlags, launcher, ...args] : [launcher, ...args];
}
