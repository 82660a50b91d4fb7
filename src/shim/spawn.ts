/**
 * Every child process the shim starts itself goes through spawnTracked(), so the reaper knows
 * which pids belong to Node (libuv reaps those with waitpid(pid)) and must never be reaped by the
 * shim's zombie sweep. See reaper.ts for the full design.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

// Process-wide: the children of this berth-shim process (one shim per process).
const nodeChildren = new Set<number>();

export function isNodeChild(pid: number): boolean {
  return nodeChildren.has(pid);
}

export function spawnTracked(cmd: string, args: readonly string[], opts: SpawnOptions): ChildProcess {
  const child = spawn(cmd, args, opts);
  const pid = child.pid;
  if (pid !== undefined) {
    nodeChildren.add(pid);
    // 'exit' is emitted after libuv has reaped the pid, so it is safe to forget it then.
    child.once('exit', () => nodeChildren.delete(pid));
  }
  return child;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a command to completion, collecting stdout/stderr (bounded to 1 MiB each). */
export function runTracked(
  cmd: string,
  args: readonly string[],
  opts: { stdio?: SpawnOptions['stdio']; input?: Uint8Array; env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const stdio = opts.stdio ?? [opts.input ? 'pipe' : 'ignore', 'pipe', 'pipe'];
    const child = spawnTracked(cmd, args, { stdio, env: opts.env, cwd: opts.cwd });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outLen = 0;
    let errLen = 0;
    const cap = 1 << 20;
    child.stdout?.on('data', (d: Buffer) => {
      if (outLen < cap) out.push(d);
      outLen += d.length;
    });
    child.stderr?.on('data', (d: Buffer) => {
      if (errLen < cap) err.push(d);
      errLen += d.length;
    });
    let timer: NodeJS.Timeout | undefined;
    if (opts.timeoutMs) timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({
        code: code ?? (signal ? 128 : 1),
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
    if (opts.input && child.stdin) child.stdin.end(opts.input);
  });
}
