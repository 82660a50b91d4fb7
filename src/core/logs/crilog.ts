/**
 * The CRI container log format, written by berth-shim for CRI containers (and by berthd for
 * shims that write raw bytes, e.g. containerd-shim-runc-v2):
 *
 *   <RFC3339Nano timestamp> <stdout|stderr> <P|F> <message>\n
 *
 * One record per line of output; a line longer than 16 KiB is split into records tagged P
 * (partial), the last piece tagged F (full). Output still unterminated at EOF is flushed as F.
 * stdout and stderr of a container share one file; records are appended whole so they never
 * interleave mid-record. reopen() closes and re-creates the file (kubelet log rotation renames
 * the file and then asks the runtime to reopen it).
 */
import { open, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';

export const MAX_CRI_LINE = 16 * 1024;
export type CriStream = 'stdout' | 'stderr';

/** Wall clock with nanosecond digits: re-anchored to Date every minute, hrtime in between. */
// Process-wide: one clock anchor per process (the clocks it reads are the process's).
let anchorNs = 0n;
let anchorHr = 0n;
export function nowNs(): bigint {
  const hr = process.hrtime.bigint();
  if (anchorNs === 0n || hr - anchorHr > 60_000_000_000n) {
    anchorNs = BigInt(Date.now()) * 1_000_000n;
    anchorHr = hr;
  }
  return anchorNs + (hr - anchorHr);
}

/** Go's time.RFC3339Nano in UTC (fraction without trailing zeros, omitted when zero). */
export function rfc3339Nano(ns: bigint): string {
  const ms = Number(ns / 1_000_000n);
  const iso = new Date(ms).toISOString(); // 2024-01-02T03:04:05.678Z
  const frac = (ns % 1_000_000_000n).toString().padStart(9, '0').replace(/0+$/, '');
  return iso.slice(0, 19) + (frac ? '.' + frac : '') + 'Z';
}

/** Format one record. `msg` must not contain the newline. */
export function criRecord(ts: string, stream: CriStream, partial: boolean, msg: Buffer): Buffer {
  const head = Buffer.from(`${ts} ${stream} ${partial ? 'P' : 'F'} `);
  return Buffer.concat([head, msg, Buffer.from('\n')]);
}

/**
 * Splits a byte stream into CRI records. Feed chunks with push(); call end() at EOF.
 * Pure (no I/O) so it is easy to test.
 */
export class CriLineSplitter {
  private pending: Buffer[] = [];
  private pendingLen = 0;

  constructor(
    private readonly stream: CriStream,
    private readonly emit: (record: Buffer) => void,
    private readonly clock: () => string = () => rfc3339Nano(nowNs()),
    private readonly maxLine = MAX_CRI_LINE,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(0x0a, start);
      const end = nl === -1 ? chunk.length : nl;
      let piece = chunk.subarray(start, end);
      // Emit P records while the accumulated line is over the limit.
      while (this.pendingLen + piece.length > this.maxLine) {
        const take = this.maxLine - this.pendingLen;
        this.pending.push(piece.subarray(0, take));
        this.pendingLen += take;
        this.flush(true);
        piece = piece.subarray(take);
      }
      if (piece.length) {
        this.pending.push(piece);
        this.pendingLen += piece.length;
      }
      if (nl === -1) break;
      this.flush(false, true);
      start = nl + 1;
    }
  }

  end(): void {
    if (this.pendingLen > 0) this.flush(false);
  }

  private flush(partial: boolean, stripCr = false): void {
    let line = this.pending.length === 1 ? (this.pending[0] as Buffer) : Buffer.concat(this.pending);
    if (stripCr && line.length && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
    this.pending = [];
    this.pendingLen = 0;
    this.emit(criRecord(this.clock(), this.stream, partial, line));
  }
}

/** One open CRI log file shared by a container's stdout and stderr. */
export class CriLogFile {
  private fh: FileHandle | undefined;
  private queue: Promise<void> = Promise.resolve();
  private queuedBytes = 0;
  private waiters: Array<() => void> = [];
  private closed = false;

  private constructor(readonly path: string) {}

  static async open(path: string): Promise<CriLogFile> {
    const f = new CriLogFile(path);
    f.fh = await open(path, 'a', 0o640);
    return f;
  }

  /** Append one record (serialised with every other write to this file). */
  write(record: Buffer): void {
    if (this.closed) return;
    this.queuedBytes += record.length;
    this.queue = this.queue.then(async () => {
      try {
        if (this.fh) await this.fh.write(record);
      } catch {
        // A full disk or a vanished file must not crash the writer; the record is dropped.
      } finally {
        this.queuedBytes -= record.length;
        if (this.queuedBytes < 256 * 1024) this.wakeWaiters();
      }
    });
  }

  /** True when the writer is behind: the source should pause until drained() resolves. */
  get congested(): boolean {
    return this.queuedBytes >= 1024 * 1024;
  }

  drained(): Promise<void> {
    if (this.queuedBytes < 256 * 1024) return Promise.resolve();
    return new Promise((r) => this.waiters.push(r));
  }

  private wakeWaiters(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const r of w) r();
  }

  /** Close the current file and open `path` again (after the old file was rotated away). */
  async reopen(): Promise<void> {
    await this.queue;
    const old = this.fh;
    this.fh = await open(this.path, 'a', 0o640);
    await old?.close();
  }

  /** Wait for queued writes, then close. */
  async close(): Promise<void> {
    await this.queue;
    this.closed = true;
    this.wakeWaiters();
    await this.fh?.close();
    this.fh = undefined;
  }

  /** Copy a readable into this file as CRI records of `stream`; resolves at EOF. */
  pump(src: Readable, stream: CriStream): Promise<void> {
    const splitter = new CriLineSplitter(stream, (rec) => this.write(rec));
    return new Promise((resolve) => {
      src.on('data', (chunk: Buffer) => {
        splitter.push(chunk);
        if (this.congested) {
          src.pause();
          void this.drained().then(() => src.resume());
        }
      });
      const done = (): void => {
        splitter.end();
        void this.queue.then(() => resolve());
      };
      src.once('end', done);
      src.once('error', () => src.destroy());
      src.once('close', done);
    });
  }
}
