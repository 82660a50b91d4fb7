/**
 * Process stdio. containerd names each stream by a string:
 *   ""                 no stream (runc gets /dev/null)
 *   "/path" | "fifo:///path"   a FIFO created by the client
 *   "file:///path"     append raw output to a file — or, for CRI containers, the CRI log
 *                      format (see crilog.ts). Convention with berthd: a task is a CRI
 *                      container when its bundle config.json carries the annotation
 *                      "io.kubernetes.cri.container-type"; berthd then passes the same
 *                      file:// URI (the kubelet log path) as stdout and stderr.
 *   "binary:///path?k=v"  a logging binary (containerd's protocol: fd 3 stdout, fd 4 stderr,
 *                      fd 5 closed by the logger once it is ready; env CONTAINER_ID,
 *                      CONTAINER_NAMESPACE; query pairs become args "k v", or "k" when v is empty).
 *
 * The container never gets the client's FIFO directly: it gets one end of a real pipe (not a
 * socketpair, so /dev/stdout works inside), and the shim copies. That lets the shim write CRI
 * records, keep output flowing when no client reads, and know when output is fully drained
 * before it reports an exit.
 *
 * FIFOs are opened O_RDWR|O_NONBLOCK: on Linux that never blocks even when the other side is
 * not open yet, and holding both ends means a client that opens late loses nothing.
 * The stdin FIFO therefore never reports EOF by itself; stdin is closed by CloseIO (as in
 * containerd).
 */
import { constants as C, openSync, closeSync } from 'node:fs';
import net from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { pipe, closeFd } from './libc.js';
import { CriLogFile, type CriStream } from './crilog.js';
import { spawnTracked } from './spawn.js';
import type { StdioFds } from './runc.js';
import type { Pty } from './console.js';
import { errors } from '../errors.js';

export interface StdioSpec {
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
}

export interface IoContext {
  /** The bundle declares a CRI container: file:// outputs are written in CRI log format. */
  cri: boolean;
  containerId: string;
  namespace: string;
}

type Dest =
  | { kind: 'none' }
  | { kind: 'fifo'; path: string }
  | { kind: 'file'; path: string }
  | { kind: 'binary'; path: string; args: string[] };

export function parseStdioUri(s: string): Dest {
  if (!s) return { kind: 'none' };
  if (s.startsWith('/')) return { kind: 'fifo', path: s };
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    throw errors.invalidArgument('shim.bad_stdio', `unsupported stdio ${JSON.stringify(s)}`);
  }
  const path = decodeURIComponent(u.pathname);
  switch (u.protocol) {
    case 'fifo:':
      return { kind: 'fifo', path };
    case 'file:':
      return { kind: 'file', path };
    case 'binary:': {
      const args: string[] = [];
      for (const [k, v] of u.searchParams) args.push(...(v ? [k, v] : [k]));
      return { kind: 'binary', path, args };
    }
    default:
      throw errors.invalidArgument('shim.bad_stdio', `unsupported stdio scheme ${u.protocol} in ${JSON.stringify(s)}`);
  }
}

function openFifo(path: string): number {
  return openSync(path, C.O_RDWR | C.O_NONBLOCK);
}

/** Files shared by stdout and stderr of one process (CRI logs, raw file:// outputs). */
const sharedCriFiles = new Map<string, { file: CriLogFile; refs: number }>();

async function acquireCriFile(path: string): Promise<CriLogFile> {
  const e = sharedCriFiles.get(path);
  if (e) {
    e.refs++;
    return e.file;
  }
  const file = await CriLogFile.open(path);
  // Another caller may have opened it while we awaited.
  const again = sharedCriFiles.get(path);
  if (again) {
    again.refs++;
    void file.close();
    return again.file;
  }
  sharedCriFiles.set(path, { file, refs: 1 });
  return file;
}

async function releaseCriFile(path: string): Promise<void> {
  const e = sharedCriFiles.get(path);
  if (!e) return;
  if (--e.refs > 0) return;
  sharedCriFiles.delete(path);
  await e.file.close();
}

/** Reopen every CRI log file among `paths` (after kubelet rotated it). */
export async function reopenCriFiles(paths: string[]): Promise<void> {
  for (const p of new Set(paths)) await sharedCriFiles.get(p)?.file.reopen();
}

/** Copy src → dst; end dst at EOF (or error) of src. Resolves when dst has finished. */
function copy(src: Readable, dst: Writable, endDst = true): Promise<void> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      src.unpipe(dst);
      if (!endDst) return resolve();
      dst.once('finish', () => resolve());
      dst.once('error', () => resolve());
      dst.once('close', () => resolve());
      dst.end();
    };
    src.pipe(dst, { end: false });
    dst.on('error', () => src.unpipe(dst));
    src.once('end', finish);
    src.once('close', finish);
    src.once('error', finish);
  });
}

export class ProcessIO {
  /** fds handed to runc for the container process ('ignore' → /dev/null). */
  readonly stdio: StdioFds = ['ignore', 'ignore', 'ignore'];
  /** container-side pipe ends, closed in the shim once runc has passed them on. */
  private childSide: number[] = [];
  private stdinWriter: net.Socket | undefined;
  private stdinSource: net.Socket | undefined;
  /** Output copies only (drain waits for these). */
  private copies: Promise<void>[] = [];
  private stdinCopy: Promise<void> | undefined;
  private cleanups: Array<() => Promise<void> | void> = [];
  private criPaths: string[] = [];
  private pty: Pty | undefined;
  private sources: net.Socket[] = [];
  private closed = false;

  private constructor(
    readonly spec: StdioSpec,
    private readonly ctx: IoContext,
  ) {}

  /** Prepare stdio for a new process. Call attachPty() after runc returned when terminal. */
  static async open(spec: StdioSpec, ctx: IoContext): Promise<ProcessIO> {
    const io = new ProcessIO(spec, ctx);
    try {
      await io.setup();
    } catch (err) {
      await io.close();
      throw err;
    }
    return io;
  }

  private async setup(): Promise<void> {
    const { spec } = this;
    if (spec.stdin) {
      const dest = parseStdioUri(spec.stdin);
      if (dest.kind !== 'fifo') throw errors.invalidArgument('shim.bad_stdin', `stdin must be a FIFO, got ${JSON.stringify(spec.stdin)}`);
      const fd = openFifo(dest.path);
      this.stdinSource = new net.Socket({ fd, readable: true, writable: false });
      this.stdinSource.on('error', () => undefined);
      this.cleanups.push(() => void this.stdinSource?.destroy());
      if (!spec.terminal) {
        const [r, w] = pipe();
        this.stdio[0] = r;
        this.childSide.push(r);
        this.stdinWriter = new net.Socket({ fd: w, readable: false, writable: true });
        this.stdinWriter.on('error', () => undefined);
        // Not an output: drain() must not wait for stdin, which may never end.
        this.stdinCopy = copy(this.stdinSource, this.stdinWriter, false);
      }
    }
    if (spec.terminal) return; // output comes from the pty master (attachPty)
    for (const [idx, name] of [
      [1, 'stdout'],
      [2, 'stderr'],
    ] as const) {
      const uri = spec[name];
      if (!uri) continue;
      const [r, w] = pipe();
      this.stdio[idx] = w;
      this.childSide.push(w);
      const src = new net.Socket({ fd: r, readable: true, writable: false });
      src.on('error', () => undefined);
      this.sources.push(src);
      this.copies.push(this.route(src, uri, name));
    }
  }

  /** Connect one output source to its destination; resolves once everything is written. */
  private async route(src: Readable, uri: string, stream: CriStream): Promise<void> {
    const dest = parseStdioUri(uri);
    switch (dest.kind) {
      case 'none':
        src.resume();
        return;
      case 'fifo': {
        const out = new net.Socket({ fd: openFifo(dest.path), readable: false, writable: true });
        out.on('error', () => undefined);
        return copy(src, out);
      }
      case 'file': {
        if (this.ctx.cri) {
          const file = await acquireCriFile(dest.path);
          this.criPaths.push(dest.path);
          this.cleanups.push(() => releaseCriFile(dest.path));
          return file.pump(src, stream);
        }
        const { createWriteStream } = await import('node:fs');
        return copy(src, createWriteStream(dest.path, { flags: 'a' }));
      }
      case 'binary':
        return this.routeBinary(src, dest.path, dest.args, stream);
    }
  }

  /**
   * binary:// logging: one logger process per ProcessIO, started on the first stream that
   * names it; it gets the stdout and stderr pipes as fds 3 and 4.
   */
  private binaryLogger: Promise<{ out: Writable | undefined; err: Writable | undefined }> | undefined;
  private routeBinary(src: Readable, path: string, args: string[], stream: CriStream): Promise<void> {
    if (!this.binaryLogger) {
      this.binaryLogger = (async () => {
        const [outR, outW] = pipe();
        const [errR, errW] = pipe();
        const [waitR, waitW] = pipe();
        const child = spawnTracked(path, args, {
          stdio: ['ignore', 'ignore', 'ignore', outR, errR, waitW],
          env: { ...process.env, CONTAINER_ID: this.ctx.containerId, CONTAINER_NAMESPACE: this.ctx.namespace },
          detached: false,
        });
        child.on('error', () => undefined);
        for (const fd of [outR, errR, waitW]) closeFd(fd);
        // Ready when the logger closes fd 5 (EOF on our end) or exits; 5 s at most.
        const waitSock = new net.Socket({ fd: waitR, readable: true, writable: false });
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, 5000);
          const done = (): void => {
            clearTimeout(t);
            resolve();
          };
          waitSock.once('close', done);
          waitSock.once('end', done);
          waitSock.once('error', done);
          waitSock.resume();
          child.once('exit', done);
        });
        waitSock.destroy();
        const out = new net.Socket({ fd: outW, readable: false, writable: true });
        const err = new net.Socket({ fd: errW, readable: false, writable: true });
        out.on('error', () => undefined);
        err.on('error', () => undefined);
        return { out, err };
      })();
    }
    return this.binaryLogger.then(({ out, err }) => {
      const dst = stream === 'stdout' ? out : err;
      if (!dst) {
        src.resume();
        return;
      }
      return copy(src, dst);
    });
  }

  /** After runc create/exec: the container holds its ends now; drop ours so EOF can happen. */
  closeChildSide(): void {
    for (const fd of this.childSide) closeSync(fd);
    this.childSide = [];
  }

  /** Terminal processes: wire the pty master to stdin/stdout. */
  attachPty(pty: Pty): void {
    this.pty = pty;
    if (this.stdinSource) this.stdinCopy = copy(this.stdinSource, pty.input, false);
    if (this.spec.stdout) this.copies.push(this.route(pty.output, this.spec.stdout, 'stdout'));
    else pty.output.resume();
  }

  get terminal(): Pty | undefined {
    return this.pty;
  }

  /** CloseIO(stdin): the process sees EOF on stdin. */
  closeStdin(): void {
    this.stdinSource?.destroy();
    this.stdinSource = undefined;
    if (this.stdinWriter) {
      this.stdinWriter.end();
      this.stdinWriter = undefined;
    }
    // A terminal has no separate stdin pipe: send EOF (^D) like containerd does for ttys.
    if (this.pty && !this.pty.input.destroyed) this.pty.input.write(Buffer.from([4]));
  }

  /** Resolves once all output has been copied (EOF on every output), or after `timeoutMs`. */
  async drain(timeoutMs: number): Promise<boolean> {
    let t: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((r) => (t = setTimeout(() => r(false), timeoutMs)));
    const all = Promise.all(this.copies).then(() => true as const);
    const r = await Promise.race([all, timeout]);
    if (t) clearTimeout(t);
    return r;
  }

  /** CRI log files this process writes (for reopen). */
  get logPaths(): string[] {
    return this.criPaths;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.closeChildSide();
    this.stdinWriter?.destroy();
    this.stdinSource?.destroy();
    this.pty?.close();
    for (const s of this.sources) s.destroy();
    if (this.binaryLogger) {
      const { out, err } = await this.binaryLogger.catch(() => ({ out: undefined, err: undefined }));
      out?.end();
      err?.end();
    }
    for (const c of this.cleanups.splice(0).reverse()) await c();
  }
}
