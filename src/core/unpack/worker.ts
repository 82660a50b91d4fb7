/**
 * Unpack worker thread: decompresses one layer at a time, hashes it and extracts it with
 * applyLayer (same code and rules as on the main thread). Running here moves inflate, tar
 * parsing, hashing and tens of thousands of synchronous file syscalls off berthd's event loop
 * and lets two layers unpack on two cores. Protocol: worker-protocol.ts.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { Readable, Transform, pipeline, type TransformCallback } from 'node:stream';
import { applyLayer } from './apply.js';
import { decompress } from './decompress.js';
import { diskUsageSync } from '../snapshots/usage.js';
import { deserializeError, serializeError, type FromWorker, type JobSpec, type ToWorker } from './worker-protocol.js';

const port = parentPort;
if (!port) throw new Error('unpack worker: must run in a worker thread');

const post = (m: FromWorker): void => port.postMessage(m);

interface Active {
  input: Readable;
  /** Pending request for the lowers, settled by a `lowers` or `abort` message. */
  lowers?: { resolve: (l: string[]) => void; reject: (e: Error) => void };
  aborted?: Error;
}

// Process-wide: this worker thread's one job at a time (each worker is its own module instance).
let active: Active | null = null;

/** 256 KiB: few thread-pool round trips per layer, little memory in flight (measured: 1 MiB was no faster). */
const INFLATE_CHUNK = 256 << 10;
const READ_CHUNK = 256 << 10;

/** Acknowledges each compressed chunk once the decompressor has taken it (flow control). */
class Ack extends Transform {
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    cb(null, chunk);
    post({ type: 'ack', bytes: chunk.length });
  }
}

/** Synchronous reads: this thread has nothing else to do meanwhile. */
function fileReader(path: string): Readable {
  let fd: number | undefined;
  let pos = 0;
  return new Readable({
    highWaterMark: READ_CHUNK,
    read() {
      try {
        fd ??= openSync(path, 'r');
        const buf = Buffer.allocUnsafe(READ_CHUNK);
        const n = readSync(fd, buf, 0, READ_CHUNK, pos);
        pos += n;
        this.push(n === 0 ? null : buf.subarray(0, n));
      } catch (err) {
        this.destroy(err as Error);
      }
    },
    destroy(err, cb) {
      if (fd !== undefined) closeSync(fd);
      cb(err);
    },
  });
}

async function run(job: JobSpec, a: Active): Promise<void> {
  // Large output chunks: each zlib chunk is a round trip to libuv's thread pool.
  const input = job.file !== undefined ? a.input : pipeline(a.input, new Ack(), () => undefined);
  const tar = pipeline(input, decompress(job.compression, { chunkSize: INFLATE_CHUNK }), () => undefined);
  const pendingLowers = async (): Promise<string[]> => {
    if (a.aborted) throw a.aborted;
    post({ type: 'need-lowers' });
    return new Promise<string[]>((resolve, reject) => (a.lowers = { resolve, reject }));
  };
  try {
    const res = await applyLayer(tar, job.dir, {
      mode: job.mode,
      ...(job.lowers === null ? { pendingLowers } : { lowers: job.lowers }),
      ...(job.maxBytes !== undefined ? { maxBytes: job.maxBytes } : {}),
    });
    // Measured here, off the main thread: the commit would otherwise walk the tree again.
    post({ type: 'done', bytes: res.bytes, diffID: res.diffID, usage: diskUsageSync(job.dir) });
  } catch (err) {
    post({ type: 'error', error: serializeError(a.aborted ?? err) });
  }
}

port.on('message', (m: ToWorker) => {
  switch (m.type) {
    case 'start': {
      const a: Active = { input: m.job.file !== undefined ? fileReader(m.job.file) : new Readable({ read() {} }) };
      active = a;
      void run(m.job, a).finally(() => {
        if (active === a) active = null;
      });
      break;
    }
    case 'data':
      active?.input.push(Buffer.from(m.chunk.buffer, m.chunk.byteOffset, m.chunk.byteLength));
      break;
    case 'end':
      active?.input.push(null);
      break;
    case 'lowers':
      active?.lowers?.resolve(m.lowers);
      break;
    case 'abort': {
      if (!active) break;
      const err = deserializeError(m.error);
      active.aborted = err;
      active.lowers?.reject(err);
      active.input.destroy(err);
      break;
    }
  }
});
