/**
 * A client of conmon's attach socket (SOCK_SEQPACKET). Each packet conmon sends is one chunk of
 * output whose first byte names the stream (2 stdout, 3 stderr); what the client writes goes
 * to the container's stdin; shutting the write side down closes the container's stdin unless
 * conmon was started with --leave-stdin-open. conmon closes every attach connection when the
 * process exits, after the last output was sent: the session's `closed` then resolves.
 *
 * Node's net module makes only stream sockets, and `new net.Socket({ fd })` refuses a
 * seqpacket fd (it cannot guess its handle type). So the socket is made and connected with
 * socket(2)/connect(2) through koffi (src/libc.ts), then opened as a libuv pipe handle, which
 * reads with read(2) (one whole packet per read: conmon's packets are at most 8 KiB, libuv
 * reads 64 KiB) and writes with write(2) (one packet per write; we write at most 8 KiB at a
 * time, one write in flight). One catch: libuv takes a short read that comes with POLLHUP for
 * the end of the stream, but a seqpacket socket may still hold packets then (conmon writes the
 * last output and closes at once). So at the end the session reads what is left with
 * recv(MSG_DONTWAIT) before it reports itself closed. (node-unix-socket does this natively, but its per-platform
 * packages are not all published where CI installs from, which breaks `npm ci`.)
 *
 * Used by berth-shim (FIFO bridges for non-CRI and exec stdio) and by berthd's attach.
 */
import net from 'node:net';
import { Writable } from 'node:stream';
import { libc } from '../libc.js';
import { ATTACH_STDERR, ATTACH_STDOUT } from '../shim-protocol.js';

const AF_UNIX = 1;
const SOCK_SEQPACKET = 5;
const SOCK_CLOEXEC = 0o2000000;
const MSG_DONTWAIT = 0x40;

type Fn = (...args: unknown[]) => number;
// Process-wide: the libc functions, bound once (koffi handles belong to the process).
let fns: { socket: Fn; connect: Fn; close: Fn; recv: Fn; errno: () => number } | undefined;
function sys(): NonNullable<typeof fns> {
  if (!fns) {
    const { lib } = libc();
    const loc = lib.func('int *__errno_location(void)') as () => unknown;
    const { koffi } = libc();
    fns = {
      socket: lib.func('int socket(int domain, int type, int protocol)'),
      connect: lib.func('int connect(int fd, void *addr, uint32_t len)'),
      close: lib.func('int close(int fd)'),
      recv: lib.func('long recv(int fd, _Out_ uint8_t *buf, size_t len, int flags)'),
      errno: () => (koffi as unknown as { decode: (p: unknown, t: string) => number }).decode(loc(), 'int'),
    };
  }
  return fns;
}

interface PipeHandle {
  open(fd: number): number;
  close(): void;
}
function pipeHandle(): PipeHandle {
  const b = (process as unknown as { binding(name: string): { Pipe: new (type: number) => PipeHandle; constants: { SOCKET: number } } }).binding('pipe_wrap');
  return new b.Pipe(b.constants.SOCKET);
}

/** A connected seqpacket socket as a Node duplex (see file comment). */
function connectSeqpacket(path: string): net.Socket {
  const addr = Buffer.alloc(110);
  addr.writeUInt16LE(AF_UNIX, 0);
  if (Buffer.byteLength(path) >= 108) throw new Error(`attach socket ${path}: path too long for sun_path`);
  addr.write(path, 2);
  const s = sys();
  const fd = s.socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new Error(`attach socket ${path}: socket: errno ${s.errno()}`);
  if (s.connect(fd, addr, addr.length) !== 0) {
    const e = s.errno();
    s.close(fd);
    const err = new Error(
      `attach socket ${path}: connect: errno ${e}${e === 2 ? ' (no such socket)' : e === 111 ? ' (connection refused)' : ''}`,
    ) as NodeJS.ErrnoException;
    err.errno = e;
    throw err;
  }
  const h = pipeHandle();
  const rc = h.open(fd);
  if (rc !== 0) {
    s.close(fd);
    throw new Error(`attach socket ${path}: cannot open as a stream handle (${rc})`);
  }
  // allowHalfOpen: when conmon has sent everything (its end), we still finish our writes.
  return new net.Socket({ handle: h, readable: true, writable: true, allowHalfOpen: true } as net.SocketConstructorOpts);
}

/** conmon reads at most 32 KiB per packet; stay well below. */
const MAX_PACKET = 8192;

export type OutputStream = 'stdout' | 'stderr';

export class AttachSession {
  /** Resolves when conmon closed the connection (process exited) or the session was destroyed. */
  readonly closed: Promise<void>;
  private done = false;
  private stdinEnded = false;
  private writing: Promise<void> = Promise.resolve();
  private listener: ((s: OutputStream, b: Buffer) => void) | undefined;
  private pending: Array<[OutputStream, Buffer]> = [];

  private constructor(private readonly sock: net.Socket) {
    let resolve!: () => void;
    this.closed = new Promise<void>((r) => (resolve = r));
    const finish = (): void => {
      if (this.done) return;
      this.done = true;
      resolve();
    };
    sock.on('data', (b: Buffer) => this.packet(b));
    sock.on('end', () => {
      this.drainLeft();
      finish();
    });
    sock.on('close', finish);
    sock.on('error', finish);
  }

  /** Connects (a local unix socket: immediate, or an error naming the path). */
  static async connect(path: string): Promise<AttachSession> {
    return new AttachSession(connectSeqpacket(path));
  }

  private packet(b: Buffer): void {
    if (b.length < 1 || (b[0] !== ATTACH_STDOUT && b[0] !== ATTACH_STDERR)) return;
    const s: OutputStream = b[0] === ATTACH_STDERR ? 'stderr' : 'stdout';
    const data = Buffer.from(b.subarray(1));
    if (this.listener) this.listener(s, data);
    else this.pending.push([s, data]);
  }

  /** Packets still queued in the socket when libuv saw the end (see file comment). */
  private drainLeft(): void {
    const fd = (this.sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (fd === undefined || fd < 0) return;
    const buf = Buffer.alloc(65536);
    for (let i = 0; i < 4096; i++) {
      const n = Number(sys().recv(fd, buf, buf.length, MSG_DONTWAIT));
      if (n <= 0) return;
      this.packet(Buffer.from(buf.subarray(0, n)));
    }
  }

  /** Receives output (anything that arrived before the listener was set is delivered first). */
  onOutput(cb: (s: OutputStream, b: Buffer) => void): void {
    this.listener = cb;
    for (const [s, b] of this.pending.splice(0)) cb(s, b);
  }

  /** Stops reading (backpressure: conmon's writes to this session then block). */
  pause(): void {
    this.sock.pause();
  }

  resume(): void {
    this.sock.resume();
  }

  get isClosed(): boolean {
    return this.done;
  }

  /** Writes stdin data (in order, one packet at a time). */
  write(data: Buffer): Promise<void> {
    this.writing = this.writing.then(async () => {
      for (let off = 0; off < data.length && !this.done && !this.stdinEnded; off += MAX_PACKET) {
        const chunk = data.subarray(off, off + MAX_PACKET);
        await new Promise<void>((r) => {
          if (this.sock.destroyed || !this.sock.writable) return r();
          this.sock.write(Buffer.from(chunk), () => r());
        });
      }
    });
    return this.writing;
  }

  /** A Writable for stdin: its end closes the container's stdin (shutdown of our write side). */
  stdinWritable(): Writable {
    return new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        this.write(chunk).then(() => cb(), cb);
      },
      final: (cb) => {
        this.closeStdin().then(() => cb(), cb);
      },
    });
  }

  /** Closes the container's stdin (after everything written so far is sent). */
  async closeStdin(): Promise<void> {
    if (this.stdinEnded) return;
    await this.writing;
    this.stdinEnded = true;
    if (this.done) return;
    await new Promise<void>((r) => {
      if (this.sock.destroyed) return r();
      this.sock.end(() => r());
    });
  }

  destroy(): void {
    this.sock.destroy();
    this.done = true;
  }
}
