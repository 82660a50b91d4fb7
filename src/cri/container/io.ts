/**
 * Container directories and stdio.
 *
 * - berth-shim: the container's conmon writes the CRI log itself (stdout and stderr are both
 *   `file://<log path>`; the spec carries the io.kubernetes.cri.container-type annotation),
 *   and stdin (config.stdin) is conmon's stdin pipe, fed by attach sessions on conmon's attach
 *   socket (stdin `attach://stdin`, `?once=1` for stdin_once).
 * - Other shims (containerd-shim-runc-v2) write raw bytes, so berthd hands them FIFOs in the
 *   container's state dir and writes the CRI log format itself (DaemonLogForwarder); their
 *   stdin is a FIFO in the state dir that attach writes into.
 */
import { constants, openSync, closeSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { CriLogFile } from '../../core/logs/crilog.js';
import type { CriStream } from '../../cri-log.js';
import { errors } from '../../errors.js';
import { BERTH_SHIM_TYPE, makeFifo } from '../../runtime/index.js';
import type { RuntimeContext } from '../server/runtime-context.js';
import { attachStdin } from '../../shim-protocol.js';
import { removeTree } from '../../fsat.js';

/** Persistent per-container directory (image volumes). */
export function containerRootDir(ctx: RuntimeContext, id: string): string {
  return join(ctx.settings.root, 'containers', id);
}

/** Volatile per-container directory (stdio FIFOs). */
export function containerStateDir(ctx: RuntimeContext, id: string): string {
  return join(ctx.settings.state, 'containers', id);
}

/** The runtime handler name a pod's containers use ('' = the default handler). */
export function handlerName(ctx: RuntimeContext, sandboxHandler: string): string {
  const name = sandboxHandler || ctx.settings.defaultRuntime;
  if (!ctx.settings.runtimes[name]) throw errors.notFound('runtime.handler_not_found', `runtime handler ${JSON.stringify(name)} is not configured`);
  return name;
}

/** True when the handler's shim writes CRI logs itself (berth-shim). */
export function shimWritesCriLog(ctx: RuntimeContext, handler: string): boolean {
  return ctx.settings.runtimes[handler]?.type === BERTH_SHIM_TYPE;
}

export interface ContainerStdio {
  stdin?: string;
  stdout?: string;
  stderr?: string;
  /** berthd must forward the stdout/stderr FIFOs into the CRI log (DaemonLogForwarder). */
  daemonLog: boolean;
}

async function mkfifo(path: string): Promise<void> {
  await rm(path, { force: true });
  await makeFifo(path);
}

/**
 * Creates what the shim needs for a container's stdio. `logPath` '' means no log: output is
 * discarded (as containerd does when the kubelet gives no log path).
 */
export async function prepareStdio(
  ctx: RuntimeContext,
  o: { id: string; handler: string; logPath: string; stdin: boolean; stdinOnce?: boolean },
): Promise<ContainerStdio> {
  const dir = containerStateDir(ctx, o.id);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const out: ContainerStdio = { daemonLog: false };
  if (o.stdin && shimWritesCriLog(ctx, o.handler)) {
    out.stdin = attachStdin(o.stdinOnce ?? false);
  } else if (o.stdin) {
    out.stdin = join(dir, 'stdin');
    await mkfifo(out.stdin);
  }
  if (o.logPath === '') return out;
  await mkdir(dirname(o.logPath), { recursive: true, mode: 0o755 });
  if (shimWritesCriLog(ctx, o.handler)) {
    const uri = `file://${encodeURI(o.logPath)}`;
    out.stdout = uri;
    out.stderr = uri;
    return out;
  }
  out.stdout = join(dir, 'stdout');
  out.stderr = join(dir, 'stderr');
  await mkfifo(out.stdout);
  await mkfifo(out.stderr);
  out.daemonLog = true;
  return out;
}

/**
 * Reads a container's stdout/stderr FIFOs and appends CRI log records. The FIFOs are opened
 * read-write (non-blocking) so neither side waits for the other; as berthd then holds a
 * writer too, EOF never comes: finish() is called on the container's exit and stops once the
 * pipes have been quiet for a moment.
 */
export class DaemonLogForwarder {
  private readonly sockets: net.Socket[] = [];
  private readonly pumps: Promise<void>[] = [];
  private lastData = Date.now();
  private finished: Promise<void> | undefined;

  private constructor(private readonly file: CriLogFile) {}

  static async start(paths: { stdout: string; stderr: string }, logPath: string): Promise<DaemonLogForwarder> {
    const f = new DaemonLogForwarder(await CriLogFile.open(logPath));
    for (const [stream, p] of [
      ['stdout', paths.stdout],
      ['stderr', paths.stderr],
    ] as Array<[CriStream, string]>) {
      const fd = openSync(p, constants.O_RDWR | constants.O_NONBLOCK);
      let sock: net.Socket;
      try {
        sock = new net.Socket({ fd, readable: true, writable: false });
      } catch (err) {
        closeSync(fd);
        throw err;
      }
      sock.on('data', () => {
        f.lastData = Date.now();
      });
      f.sockets.push(sock);
      f.pumps.push(f.file.pump(sock, stream));
    }
    return f;
  }

  reopen(): Promise<void> {
    return this.file.reopen();
  }

  /** Drain (until 100 ms without data, 2 s at most), then close. Idempotent. */
  finish(): Promise<void> {
    this.finished ??= (async () => {
      const deadline = Date.now() + 2000;
      while (Date.now() < deadline && Date.now() - this.lastData < 100) await new Promise((r) => setTimeout(r, 25));
      for (const s of this.sockets) s.destroy();
      await Promise.all(this.pumps);
      await this.file.close();
    })();
    return this.finished;
  }
}

/**
 * The live daemon-side log forwarders of one RuntimeContext (ctx.logForwarders), by
 * namespace/container id.
 */
export class LogForwarders {
  private readonly byId = new Map<string, DaemonLogForwarder>();

  has(ns: string, id: string): boolean {
    return this.byId.has(`${ns}/${id}`);
  }

  async start(ctx: RuntimeContext, ns: string, id: string, logPath: string): Promise<void> {
    const k = `${ns}/${id}`;
    if (this.byId.has(k)) return;
    const dir = containerStateDir(ctx, id);
    const f = await DaemonLogForwarder.start({ stdout: join(dir, 'stdout'), stderr: join(dir, 'stderr') }, logPath);
    if (this.byId.has(k)) {
      // Started twice at once (create and a start event): keep the first.
      await f.finish();
      return;
    }
    this.byId.set(k, f);
  }

  async finish(ns: string, id: string): Promise<void> {
    const k = `${ns}/${id}`;
    const f = this.byId.get(k);
    if (!f) return;
    this.byId.delete(k);
    await f.finish();
  }

  /** Reopen the log of a daemon-forwarded container; false when this context forwards none for it. */
  async reopen(ns: string, id: string): Promise<boolean> {
    const f = this.byId.get(`${ns}/${id}`);
    if (!f) return false;
    await f.reopen();
    return true;
  }
}

export function startLogForwarder(ctx: RuntimeContext, ns: string, id: string, logPath: string): Promise<void> {
  return ctx.logForwarders.start(ctx, ns, id, logPath);
}

export function finishLogForwarder(ctx: RuntimeContext, ns: string, id: string): Promise<void> {
  return ctx.logForwarders.finish(ns, id);
}

export async function removeContainerDirs(ctx: RuntimeContext, ns: string, id: string): Promise<void> {
  await finishLogForwarder(ctx, ns, id);
  await rm(containerStateDir(ctx, id), { recursive: true, force: true });
  // Image volumes the container wrote into: any depth, never following its symlinks.
  await removeTree(containerRootDir(ctx, id));
}
