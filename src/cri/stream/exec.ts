/**
 * Exec RPC (validate, hand out a streaming URL) and the exec machinery shared by ExecSync and
 * the streaming backend: the process spec (the container's own process with new args), FIFOs
 * for stdio, start, wait, kill of the whole process tree, delete.
 *
 * FIFO protocol with the shims: berthd creates the FIFOs; for output it opens the read end
 * first and then a write end it keeps ("keeper") so the reader does not see EOF before the
 * shim opened its side. Both shims report an exit only after the output was copied, so once
 * Wait returns berthd drops the keeper and the reader ends when the shim closes its side.
 */
import { constants as C, closeSync, openSync } from 'node:fs';
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import { constants as osConstants } from 'node:os';
import { join } from 'node:path';
import { errors, isBerthError } from '../../errors.js';
import { bundlePaths, makeFifo } from '../../runtime/index.js';
import { findContainer, newId, type RuntimeContext } from '../server/runtime-context.js';
import type { RuntimeHandlers } from '../server/server.js';
import { sleep, type Clock } from '../server/ports.js';

/**
 * Exec and Attach stream flags (CRI): at least one of stdin, stdout, stderr; with a tty,
 * stderr must be false (a terminal has one output stream).
 */
export function checkStreams(req: { stdin: boolean; stdout: boolean; stderr: boolean; tty: boolean }): void {
  if (!req.stdin && !req.stdout && !req.stderr) throw errors.invalidArgument('exec.no_streams', 'one of stdin, stdout or stderr must be set');
  if (req.tty && req.stderr) throw errors.invalidArgument('exec.tty_stderr', 'tty and stderr cannot both be set (a tty has one output stream)');
}

/** The container record, checked to be running (exec/attach need a live process). */
export function runningContainer(ctx: RuntimeContext, ns: string, id: string) {
  const c = findContainer(ctx, ns, id);
  if (c.state !== 'running') throw errors.failedPrecondition('container.not_running', `container ${c.id} is not running (state ${c.state})`);
  return c;
}

/** The exec process spec: the container's process (env, cwd, user, caps…) with `cmd` as args. */
export async function execProcessSpec(ctx: RuntimeContext, ns: string, containerId: string, cmd: string[], tty: boolean): Promise<Record<string, unknown>> {
  if (cmd.length === 0 || cmd[0] === '') throw errors.invalidArgument('exec.empty_cmd', 'cmd is required');
  const { dir } = bundlePaths(ctx.settings.state, ctx.settings.root, ns, containerId);
  let spec: { process?: Record<string, unknown> };
  try {
    spec = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as typeof spec;
  } catch (err) {
    throw errors.failedPrecondition('exec.no_spec', `container ${containerId} has no runtime spec (task gone?)`, err);
  }
  // A deep copy: the exec must never alias the container's own process object.
  const p = structuredClone(spec.process ?? {});
  p.args = [...cmd];
  p.terminal = tty;
  delete p.consoleSize;
  return p;
}

/** stdio FIFOs of one exec process (see the file header for the protocol). */
export class ExecFifos {
  stdin: net.Socket | undefined;
  stdout: net.Socket | undefined;
  stderr: net.Socket | undefined;
  readonly paths: { stdin?: string; stdout?: string; stderr?: string } = {};
  private keepers: number[] = [];

  private constructor(readonly dir: string) {}

  static async open(dir: string, want: { stdin: boolean; stdout: boolean; stderr: boolean }): Promise<ExecFifos> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const io = new ExecFifos(dir);
    try {
      const names = (['stdin', 'stdout', 'stderr'] as const).filter((n) => want[n]);
      for (const n of names) await makeFifo(join(dir, n));
      for (const n of names) io.paths[n] = join(dir, n);
      if (io.paths.stdin) {
        // O_RDWR never blocks and never fails for lack of a reader.
        io.stdin = new net.Socket({ fd: openSync(io.paths.stdin, C.O_RDWR | C.O_NONBLOCK), readable: false, writable: true });
        io.stdin.on('error', () => undefined);
      }
      for (const n of ['stdout', 'stderr'] as const) {
        const p = io.paths[n];
        if (!p) continue;
        const r = openSync(p, C.O_RDONLY | C.O_NONBLOCK);
        io.keepers.push(openSync(p, C.O_WRONLY | C.O_NONBLOCK));
        const s = new net.Socket({ fd: r, readable: true, writable: false });
        s.on('error', () => undefined);
        io[n] = s;
      }
    } catch (err) {
      await io.close();
      throw err;
    }
    return io;
  }

  /**
   * The process exited: let the outputs end once the shim closed its side; at most `timeoutMs`
   * on `clock` (ctx.clock: a child that keeps the output open costs a unit test no real time).
   */
  async drain(clock: Clock, timeoutMs: number): Promise<void> {
    for (const fd of this.keepers.splice(0)) closeSync(fd);
    const ends = [this.stdout, this.stderr]
      .filter((s): s is net.Socket => s !== undefined && !s.readableEnded && !s.destroyed)
      .map((s) => new Promise<void>((r) => (s.once('end', r), s.once('close', r))));
    const cap = sleep(clock, timeoutMs);
    await Promise.race([Promise.all(ends), cap.done]);
    cap.cancel();
  }

  async close(): Promise<void> {
    for (const fd of this.keepers.splice(0)) closeSync(fd);
    this.stdin?.destroy();
    this.stdout?.destroy();
    this.stderr?.destroy();
    await rm(this.dir, { recursive: true, force: true });
  }
}

/** Host pids of every descendant of `pid` (from /proc; racing exits are ignored). */
export async function descendants(pid: number): Promise<number[]> {
  const parent = new Map<number, number>();
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = await readFile(`/proc/${name}/stat`, 'utf8');
      // Field 4 (ppid) follows the parenthesised command, which may itself hold spaces.
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      parent.set(Number(name), Number(rest[1]));
    } catch {
      /* exited meanwhile */
    }
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length) {
    const p = queue.shift()!;
    for (const [child, pp] of parent) {
      if (pp === p) {
        out.push(child);
        queue.push(child);
      }
    }
  }
  return out;
}

export interface ExecStart {
  ns: string;
  containerId: string;
  cmd: string[];
  tty: boolean;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
}

/** A started exec process. Always call cleanup() (it deletes the process and its FIFOs). */
export class ExecProcess {
  private cleaned = false;
  private constructor(
    private readonly ctx: RuntimeContext,
    readonly ns: string,
    readonly containerId: string,
    readonly execId: string,
    readonly io: ExecFifos,
    public pid = 0,
  ) {}

  static async start(ctx: RuntimeContext, o: ExecStart): Promise<ExecProcess> {
    const spec = await execProcessSpec(ctx, o.ns, o.containerId, o.cmd, o.tty);
    const execId = newId().slice(0, 32);
    // With a TTY there is one output stream (the terminal); stderr is folded into it.
    const io = await ExecFifos.open(join(ctx.settings.state, 'exec', execId), { stdin: o.stdin, stdout: o.stdout || o.tty, stderr: o.stderr && !o.tty });
    const p = new ExecProcess(ctx, o.ns, o.containerId, execId, io);
    try {
      await ctx.tasks.exec(o.ns, o.containerId, execId, spec, { stdin: io.paths.stdin, stdout: io.paths.stdout, stderr: io.paths.stderr, terminal: o.tty });
      try {
        p.pid = await ctx.tasks.start(o.ns, o.containerId, execId);
      } catch (err) {
        await ctx.tasks.delete(o.ns, o.containerId, execId).catch(() => undefined);
        throw err;
      }
    } catch (err) {
      await io.close();
      p.cleaned = true;
      throw err;
    }
    return p;
  }

  /** Exit code, once the process exited and its output was drained (2 s at most after exit). */
  async wait(): Promise<number> {
    const st = await this.ctx.tasks.wait(this.ns, this.containerId, this.execId);
    await this.io.drain(this.ctx.clock, 2000);
    return st.exitStatus;
  }

  /** SIGKILL the process and everything it started (a timed-out exec leaves nothing behind). */
  async killTree(): Promise<void> {
    for (let round = 0; round < 2 && this.pid > 0; round++) {
      for (const d of await descendants(this.pid)) {
        try {
          process.kill(d, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    await this.ctx.tasks.kill(this.ns, this.containerId, osConstants.signals.SIGKILL, { execId: this.execId }).catch((err: unknown) => {
      if (!isBerthError(err, 'NotFound') && !isBerthError(err, 'FailedPrecondition')) throw err;
    });
  }

  async resize(width: number, height: number): Promise<void> {
    await this.ctx.tasks.resizePty(this.ns, this.containerId, width, height, this.execId);
  }

  async closeStdin(): Promise<void> {
    await this.ctx.tasks.closeIO(this.ns, this.containerId, this.execId);
  }

  async cleanup(): Promise<void> {
    if (this.cleaned) return;
    this.cleaned = true;
    await this.ctx.tasks
      .delete(this.ns, this.containerId, this.execId)
      .catch((err: unknown) => this.ctx.log.debug('exec delete failed', { execId: this.execId, error: err }));
    await this.io.close();
  }
}

/** Exec RPC: check the container runs, then hand out a streaming URL. */
export const exec =
  (ctx: RuntimeContext): NonNullable<RuntimeHandlers['exec']> =>
  async (req, call) => {
    if (req.cmd.length === 0 || req.cmd[0] === '') throw errors.invalidArgument('exec.empty_cmd', 'cmd is required');
    checkStreams(req);
    const c = runningContainer(ctx, call.namespace, req.containerId);
    const url = ctx.streaming.getExec({ containerId: c.id, cmd: req.cmd, tty: req.tty, stdin: req.stdin, stdout: req.stdout, stderr: req.stderr });
    return { url };
  };
