/**
 * Unpack worker thread: decompresses one layer at a time, hashes it and extracts it with
 * applyLayer (same code and rules as on the main thread). Running here moves inflate, tar
 * parsing, hashing and tens of thousands of synchronous file syscalls off berthd's event loop
 * and lets two layers unpack on two cores. Protocol: worker-protocol.ts.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import type { Transform } from 'node:stream';
import { applyLayer } from './apply.js';
import { decompress, type Compression } from './decompress.js';
import { diskUsageSync } from '../snapshots/usage.js';
import { YoungGc } from './young-gc.js';
import { deserializeError, serializeError, type FromWorker, type JobSpec, type ToWorker } from './worker-protocol.js';

const port = parentPort;
if (!port) throw new Error('unpack worker: must run in a worker thread');

const post = (m: FromWorker, transfer?: ArrayBuffer[]): void => port.postMessage(m, transfer);

interface Active {
  /** The decompressor: the compressed layer is written into it, the tar comes out. */
  inflate: Transform;
  /** Whether a chunk's memory is free again once `inflate` has taken it (see `recycles`). */
  recycles: boolean;
  /** Stops the file reader (a job fed from a file). */
  stopReading?: () => void;
  /** Pending request for the lowers, settled by a `lowers` or `abort` message. */
  lowers?: { resolve: (l: string[]) => void; reject: (e: Error) => void };
  aborted?: Error;
}

// Process-wide: this worker thread's one job at a time (each worker is its own module instance).
let active: Active | null = null;
/**
 * This thread's scavenges, per 2 MiB of compressed input: the inflate output that goes with it
 * (as much or more) is in dead 256 KiB buffers by then (see young-gc.ts). Measured on the pull
 * bench: a scavenge per 4 MiB gave a peak RSS of 204-212 MiB, per 2 MiB 181-184.
 */
const young = new YoungGc(2 << 20);

/** 256 KiB: few thread-pool round trips per layer, little memory in flight (measured: 1 MiB was no faster). */
const INFLATE_CHUNK = 256 << 10;
const READ_CHUNK = 256 << 10;
/** Read buffers of a file-fed job: one being inflated while the next is read. */
const READ_BUFFERS = 2;

/**
 * Whether the decompressor is done with an input chunk once its write callback ran: zlib
 * inflates it into its own output buffers; fzstd keeps pieces of its input between calls, and
 * "none" passes the chunk itself on to the tar reader, so their chunks are never reused.
 */
const recycles = (c: Compression): boolean => c === 'gzip';

/**
 * Feeds a file into `a.inflate` with synchronous reads (this thread has nothing else to do
 * meanwhile), READ_BUFFERS chunks at a time. With a recycling decompressor the same buffers are
 * read into again: one buffer per 256 KiB read, each dead after its inflate, was garbage V8
 * collected only at its next full GC (tens of MiB per worker at a pull's peak).
 */
function readFile(path: string, a: Active): void {
  let fd: number | undefined;
  let pos = 0;
  let inflight = 0;
  let done = false;
  const free: Buffer[] = [];
  const stop = () => {
    if (done) return;
    done = true;
    if (fd !== undefined) closeSync(fd);
  };
  a.stopReading = stop;
  const pump = () => {
    try {
      while (!done && inflight < READ_BUFFERS) {
        fd ??= openSync(path, 'r');
        const buf = (a.recycles ? free.pop() : undefined) ?? Buffer.allocUnsafe(READ_CHUNK);
        const n = readSync(fd, buf, 0, READ_CHUNK, pos);
        pos += n;
        young.add(n);
        if (n === 0) {
          stop();
          a.inflate.end();
          return;
        }
        inflight++;
        a.inflate.write(buf.subarray(0, n), (err) => {
          inflight--;
          if (err) return stop();
          if (a.recycles) free.push(buf);
          pump();
        });
      }
    } catch (err) {
      stop();
      a.inflate.destroy(err as Error);
    }
  };
  pump();
}

async function run(job: JobSpec, a: Active): Promise<void> {
  const pendingLowers = async (): Promise<string[]> => {
    if (a.aborted) throw a.aborted;
    post({ type: 'need-lowers' });
    return new Promise<string[]>((resolve, reject) => (a.lowers = { resolve, reject }));
  };
  try {
    const res = await applyLayer(a.inflate, job.dir, {
      mode: job.mode,
      ...(job.lowers === null ? { pendingLowers } : { lowers: job.lowers }),
      ...(job.maxBytes !== undefined ? { maxBytes: job.maxBytes } : {}),
    });
    // Measured here, off the main thread: the commit would otherwise walk the tree again.
    post({ type: 'done', bytes: res.bytes, diffID: res.diffID, usage: diskUsageSync(job.dir) });
  } catch (err) {
    post({ type: 'error', error: serializeError(a.aborted ?? err) });
  } finally {
    a.stopReading?.();
  }
}

port.on('message', (m: ToWorker) => {
  switch (m.type) {
    case 'start': {
      // Large output chunks: each zlib chunk is a round trip to libuv's thread pool.
      const a: Active = { inflate: decompress(m.job.compression, { chunkSize: INFLATE_CHUNK }), recycles: recycles(m.job.compression) };
      // applyLayer sees a failure through its reads; until it reads, an error must not go unhandled.
      a.inflate.on('error', () => undefined);
      active = a;
      void run(m.job, a).finally(() => {
        if (active === a) active = null;
      });
      if (m.job.file !== undefined) readFile(m.job.file, a);
      break;
    }
    case 'data': {
      const a = active;
      if (!a) break;
      const { chunk } = m;
      young.add(chunk.byteLength);
      // Acknowledged once the decompressor has taken it (flow control), with its memory.
      a.inflate.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength), (err) => {
        if (err || !a.recycles) post({ type: 'ack', bytes: chunk.byteLength });
        else post({ type: 'ack', bytes: chunk.byteLength, chunk }, [chunk.buffer as ArrayBuffer]);
      });
      break;
    }
    case 'end':
      active?.inflate.end();
      break;
    case 'lowers':
      active?.lowers?.resolve(m.lowers);
      break;
    case 'abort': {
      if (!active) break;
      const err = deserializeError(m.error);
      active.aborted = err;
      active.lowers?.reject(err);
      active.stopReading?.();
      active.inflate.destroy(err);
      break;
    }
  }
});
