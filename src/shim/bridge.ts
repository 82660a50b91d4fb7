/**
 * Stdio named by URIs (containerd's convention) for a process that conmon monitors:
 *   ""                  no stream
 *   "/path" | "fifo:///path"   a FIFO created by the client
 *   "file:///path"      raw output appended to a file (CRI containers: conmon's k8s-file log)
 *
 * conmon owns the process's pipes; a Bridge is one attach session on conmon's attach socket
 * that copies output packets into the client's FIFOs or files and the client's stdin FIFO
 * into the session. CloseIO ends the session's write side, which makes conmon close the
 * process's stdin. A bridge lives in the shim: if the shim dies the process keeps running and
 * a new shim connects a new bridge (output written meanwhile is dropped by conmon).
 *
 * FIFOs are opened O_RDWR|O_NONBLOCK: that never blocks when the other side is not open yet,
 * and a client that opens late loses nothing. The price for stdin: the shim holds a write end
 * itself, so the FIFO never reports EOF, and CloseIO is the only end of input. The client
 * calls it once its last write reached the FIFO; what is still in the FIFO then (up to the pipe
 * size) and in the socket's read buffer is taken before the session's write side ends (it used
 * to be discarded: the last 64–128 KiB of an exec's input, see
 * test/integration/streaming-exec-stdin-flood.test.ts).
 *
 * Backpressure both ways: output waits for the client's FIFO (the session is not read while it
 * is full, so conmon waits), and stdin is read from the FIFO one chunk at a time, the next only
 * once the previous one was written to the session (conmon stops reading it while the
 * process's stdin pipe is full).
 */
import { constants as C, createWriteStream, openSync, readSync } from 'node:fs';
import net from 'node:net';
import type { Writable } from 'node:stream';
import { errors } from '../errors.js';
import { AttachSession } from '../conmon/attach.js';
import { pipeSize } from './libc.js';

/** When a FIFO's size cannot be asked: the most an unprivileged F_SETPIPE_SZ may set (fs.pipe-max-size's default). */
const PIPE_SIZE_FALLBACK = 1024 * 1024;

/**
 * Reads what a non-blocking FIFO holds (`read` returns 0 or throws EAGAIN when it is empty),
 * at most `limit` bytes, handing each chunk to `write`; returns the bytes read. `limit` is the
 * pipe's size: all the FIFO can hold when CloseIO comes. Without it a writer that kept writing
 * after CloseIO kept this synchronous loop going (the shim's event loop stopped) and queued
 * its data without bound.
 */
export function drainFifo(read: (buf: Buffer) => number, limit: number, write: (b: Buffer) => void): number {
  const buf = Buffer.allocUnsafe(Math.min(65536, Math.max(1, limit)));
  let total = 0;
  while (total < limit) {
    let n: number;
    try {
      n = read(buf.subarray(0, Math.min(buf.length, limit - total)));
    } catch {
      break; // EAGAIN: the FIFO is empty
    }
    if (n <= 0) break;
    write(Buffer.from(buf.subarray(0, n)));
    total += n;
  }
  return total;
}

export interface StdioSpec {
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
}

type Dest = { kind: 'none' } | { kind: 'fifo'; path: string } | { kind: 'file'; path: string };

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
    default:
      throw errors.invalidArgument('shim.bad_stdio', `unsupported stdio scheme ${u.protocol} in ${JSON.stringify(s)} (berth-shim takes FIFOs and file://)`);
  }
}

/** True when the stdio needs a bridge (anything but nothing at all). */
export function needsBridge(s: StdioSpec): boolean {
  return !!(s.stdin || s.stdout || s.stderr);
}

function openOut(d: Dest): Writable | undefined {
  switch (d.kind) {
    case 'none':
      return undefined;
    case 'fifo': {
      const w = new net.Socket({ fd: openSync(d.path, C.O_RDWR | C.O_NONBLOCK), readable: false, writable: true });
      w.on('error', () => undefined);
      return w;
    }
    case 'file': {
      const w = createWriteStream(d.path, { flags: 'a' });
      w.on('error', () => undefined);
      return w;
    }
  }
}

export class Bridge {
  private stdinSrc: net.Socket | undefined;
  /** The stdin FIFO's fd (owned by stdinSrc; read directly only when CloseIO drains it). */
  private stdinFd = -1;
  private readonly outs: Writable[] = [];

  private constructor(private readonly session: AttachSession) {}

  /** Validates the URIs (before anything is started). */
  static check(s: StdioSpec): void {
    const i = parseStdioUri(s.stdin);
    if (i.kind === 'file') throw errors.invalidArgument('shim.bad_stdin', `stdin must be a FIFO, got ${JSON.stringify(s.stdin)}`);
    parseStdioUri(s.stdout);
    parseStdioUri(s.stderr);
  }

  static async open(socketPath: string, s: StdioSpec): Promise<Bridge> {
    const session = await AttachSession.connect(socketPath);
    const b = new Bridge(session);
    try {
      const out = openOut(parseStdioUri(s.stdout));
      // One file named twice (stdout and stderr to the same file) gets one writer.
      const err = s.stderr && s.stderr === s.stdout ? out : openOut(parseStdioUri(s.stderr));
      for (const w of new Set([out, err])) if (w) b.outs.push(w);
      // Backpressure: while a client's FIFO is full, stop reading the session, so that the
      // process's conmon waits instead of the shim buffering its output.
      let waiting = 0;
      session.onOutput((stream, data) => {
        const w = stream === 'stderr' && !s.terminal ? err : out;
        if (!w || w.destroyed) return;
        if (!w.write(data)) {
          if (waiting++ === 0) session.pause();
          w.once('drain', () => {
            if (--waiting === 0) session.resume();
          });
        }
      });
      const inp = parseStdioUri(s.stdin);
      if (inp.kind === 'fifo') {
        const fd = openSync(inp.path, C.O_RDWR | C.O_NONBLOCK);
        const src = new net.Socket({ fd, readable: true, writable: false });
        src.on('error', () => undefined);
        src.on('data', (d: Buffer) => {
          src.pause();
          session.write(d).finally(() => {
            if (b.stdinSrc === src) src.resume();
          });
        });
        b.stdinSrc = src;
        b.stdinFd = fd;
      }
    } catch (e) {
      b.close();
      throw e;
    }
    return b;
  }

  /**
   * CloseIO: the process sees EOF on stdin (conmon closes it when our write side ends), after
   * everything the client wrote before: what the socket has read but not delivered, then what
   * is left in the FIFO, read here synchronously (non-blocking; EAGAIN means empty), queued
   * behind the write in flight. At most the pipe size plus a read buffer: bounded (drainFifo).
   */
  closeStdin(): void {
    const src = this.stdinSrc;
    const fd = this.stdinFd;
    this.stdinSrc = undefined;
    this.stdinFd = -1;
    // A socket already destroyed (a read error) closed its fd: that number may be another
    // file's by now (another exec's FIFO, a socket), so it is never read.
    if (src && !src.destroyed) {
      src.removeAllListeners('data');
      for (let d = src.read() as Buffer | null; d !== null; d = src.read() as Buffer | null) void this.session.write(d);
      let limit = PIPE_SIZE_FALLBACK;
      try {
        limit = pipeSize(fd) ?? PIPE_SIZE_FALLBACK;
      } catch {
        // koffi could not load: the fallback bound
      }
      drainFifo(
        (b) => readSync(fd, b, 0, b.length, null),
        limit,
        (d) => void this.session.write(d),
      );
    }
    src?.destroy();
    void this.session.closeStdin();
  }

  /** Resolves once conmon closed the session (all output sent) and it was written out, or after timeoutMs. */
  async drain(timeoutMs: number): Promise<boolean> {
    let t: NodeJS.Timeout | undefined;
    const timeout = new Promise<false>((r) => (t = setTimeout(() => r(false), timeoutMs)));
    const flushed = this.session.closed.then(async () => {
      await Promise.all(
        this.outs.map(
          (w) =>
            new Promise<void>((r) => {
              if (w.destroyed || w.writableFinished) return r();
              w.once('finish', () => r());
              w.once('error', () => r());
              w.once('close', () => r());
              w.end();
            }),
        ),
      );
      return true as const;
    });
    const r = await Promise.race([flushed, timeout]);
    if (t) clearTimeout(t);
    return r;
  }

  close(): void {
    this.stdinSrc?.destroy();
    this.stdinSrc = undefined;
    this.session.destroy();
    for (const w of this.outs) w.destroy();
  }
}
