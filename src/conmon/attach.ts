/**
 * A client of conmon's attach socket (SOCK_SEQPACKET; Node's net module has no such sockets,
 * so node-unix-socket provides them). Each packet conmon sends is one chunk of output whose
 * first byte names the stream (2 stdout, 3 stderr); what the client writes goes to the
 * container's stdin; shutting the write side down closes the container's stdin unless conmon
 * was started with --leave-stdin-open. conmon closes every attach connection when the
 * process exits, after the last output was sent: the session's `closed` then resolves.
 *
 * Used by berth-shim (FIFO bridges for non-CRI and exec stdio) and by berthd's attach.
 */
import { createRequire } from 'node:module';
import { Writable } from 'node:stream';
import { ATTACH_STDERR, ATTACH_STDOUT } from '../shim-protocol.js';

interface SeqpacketSocketLike {
  on(ev: 'data', cb: (b: Buffer) => void): void;
  on(ev: 'end' | 'close', cb: () => void): void;
  on(ev: 'error', cb: (e: Error) => void): void;
  connect(path: string, cb: () => void): void;
  write(buf: Buffer, offset?: number, length?: number, cb?: () => void): void;
  end(cb?: () => void): void;
  destroy(): void;
}
type SeqpacketCtor = new () => SeqpacketSocketLike;

let ctor: SeqpacketCtor | undefined;
function seqpacket(): SeqpacketCtor {
  ctor ??= (createRequire(import.meta.url)('node-unix-socket') as { SeqpacketSocket: SeqpacketCtor }).SeqpacketSocket;
  return ctor;
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

  private constructor(private readonly sock: SeqpacketSocketLike) {
    let resolve!: () => void;
    this.closed = new Promise<void>((r) => (resolve = r));
    const finish = (): void => {
      if (this.done) return;
      this.done = true;
      resolve();
    };
    sock.on('data', (b: Buffer) => {
      if (b.length < 1) return;
      const s: OutputStream = b[0] === ATTACH_STDERR ? 'stderr' : 'stdout';
      if (b[0] !== ATTACH_STDOUT && b[0] !== ATTACH_STDERR) return;
      const data = Buffer.from(b.subarray(1));
      if (this.listener) this.listener(s, data);
      else this.pending.push([s, data]);
    });
    sock.on('end', finish);
    sock.on('close', finish);
    sock.on('error', finish);
  }

  static connect(path: string, timeoutMs = 5000): Promise<AttachSession> {
    const Ctor = seqpacket();
    return new Promise((resolve, reject) => {
      const sock = new Ctor();
      const t = setTimeout(() => {
        sock.destroy();
        reject(new Error(`attach socket ${path}: connect timed out`));
      }, timeoutMs);
      sock.on('error', (e: Error) => {
        clearTimeout(t);
        reject(new Error(`attach socket ${path}: ${e.message}`));
      });
      try {
        sock.connect(path, () => {
          clearTimeout(t);
          resolve(new AttachSession(sock));
        });
      } catch (e) {
        clearTimeout(t);
        reject(new Error(`attach socket ${path}: ${(e as Error).message}`));
      }
    });
  }

  /** Receives output (anything that arrived before the listener was set is delivered first). */
  onOutput(cb: (s: OutputStream, b: Buffer) => void): void {
    this.listener = cb;
    for (const [s, b] of this.pending.splice(0)) cb(s, b);
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
          try {
            this.sock.write(Buffer.from(chunk), 0, chunk.length, r);
          } catch {
            r();
          }
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
      try {
        this.sock.end(() => r());
      } catch {
        r();
      }
    });
  }

  destroy(): void {
    if (!this.done) {
      try {
        this.sock.destroy();
      } catch {
        // already gone
      }
    }
    this.done = true;
  }
}
