/**
 * berthd's CRI log writer, for shims that hand over a container's raw stdio (e.g.
 * containerd-shim-runc-v2): stdout and stderr are split into CRI records (the format and the
 * splitter are in src/cri-log.ts, beside its decoder) and appended to one file. Containers of
 * berth-shim do not come here: their conmon writes the log itself.
 *
 * Records are appended whole, so the two streams never interleave mid-record. reopen() closes
 * and re-creates the file (kubelet's log rotation renames the file, then asks the runtime to
 * reopen it). Writes are queued; a writer past 1 MiB behind makes pump() pause its source.
 */
import { open, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { CriLineSplitter, type CriStream } from '../../cri-log.js';

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
