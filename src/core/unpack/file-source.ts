/**
 * A layer blob that is already a file (e.g. in the content store). It reads like any stream,
 * but the unpack pool recognises it and lets the worker read the file itself: no copy through
 * the main thread and no thread-pool round trip per chunk.
 */
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';

const CHUNK = 1 << 20;

export class FileSource extends Readable {
  private inner: Readable | undefined;

  constructor(readonly path: string) {
    super({ highWaterMark: CHUNK });
  }

  override _read(): void {
    if (this.inner) {
      this.inner.resume();
      return;
    }
    // Opened on first read only: when a worker reads the file, this side never opens it.
    const inner = createReadStream(this.path, { highWaterMark: CHUNK });
    this.inner = inner;
    inner.on('data', (c: string | Buffer) => {
      if (!this.push(c)) inner.pause();
    });
    inner.on('end', () => this.push(null));
    inner.on('error', (err) => this.destroy(err));
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.inner?.destroy();
    cb(err);
  }
}
