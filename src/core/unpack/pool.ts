/**
 * A small pool of unpack worker threads (worker.ts). A caller reserves a slot synchronously
 * (`reserve()`: first come, first served, so a layer reserved before its child always gets a
 * worker first and a child waiting for its parent can never starve it), then streams the
 * compressed layer into the worker with `extract()`. Chunks are copied into batches that are
 * transferred to the worker and back (reused); at most HIGH_WATER bytes are in flight, so a slow
 * disk slows the download instead of filling memory.
 *
 * Workers start on first use and exit after `idleMs` without work; an idle worker does not
 * keep the process alive. Where worker threads cannot start, extraction runs on the calling
 * thread (same code, same results).
 */
import { availableParallelism } from 'node:os';
import type { Readable } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { errors } from '../../errors.js';
import { applyLayer, type ApplyResult, type WhiteoutMode } from './apply.js';
import { decompressStream, type Compression } from './decompress.js';
import { FileSource } from './file-source.js';
import type { PendingLowers } from './resolve.js';
import type { SnapshotUsage } from '../snapshots/types.js';
import { deserializeError, serializeError, type FromWorker, type ToWorker } from './worker-protocol.js';

const HIGH_WATER = 4 << 20;
const LOW_WATER = 1 << 20;
/**
 * Chunks are batched into messages of about this size: every message (and its ack) wakes the
 * other thread, and on this class of VM a thread hand-off costs more than copying 512 KiB.
 */
const BATCH = 512 << 10;
/**
 * Batches come back with the worker's ack once inflated and are reused: a job keeps at most
 * HIGH_WATER / BATCH + 1 in flight. (A new 512 KiB buffer per batch lived until V8's next full
 * GC in both threads.) The spares are dropped when no job runs.
 */
const SPARE_BATCHES = HIGH_WATER / BATCH + 2;

export interface ExtractJob {
  /** The compressed layer blob. */
  source: Readable;
  compression: Compression;
  /** Directory the layer is extracted into. */
  dir: string;
  mode: WhiteoutMode;
  /** overlay: lower dirs, newest first. */
  lowers?: readonly string[];
  /** overlay, instead of `lowers`: asked for only if the layer needs them (see resolve.ts). */
  pendingLowers?: PendingLowers;
  /** Most uncompressed bytes (default apply.ts MAX_LAYER_BYTES). */
  maxBytes?: number;
}

/** What an extraction produced; `usage` (of `dir`) when the worker measured it. */
export interface ExtractResult extends ApplyResult {
  usage?: SnapshotUsage;
}

export interface Reservation {
  /** Runs the job on the reserved worker; resolves once the worker has stopped writing. */
  extract(job: ExtractJob): Promise<ExtractResult>;
  /** Gives the slot back without using it. */
  cancel(): void;
}

interface Slot {
  worker: Worker;
  idleTimer?: NodeJS.Timeout;
  /** Set while a job runs: a crash rejects it. */
  onCrash?: (err: Error) => void;
}

export interface UnpackPoolOptions {
  /** Worker threads (default: min(2, cores)). 0 runs every job on the calling thread. */
  size?: number;
  /** Idle workers exit after this long (default 10 s). */
  idleMs?: number;
}

export class UnpackPool {
  readonly size: number;
  private readonly idleMs: number;
  private readonly idle: Slot[] = [];
  private live = 0;
  private readonly waiting: Array<(s: Slot | null) => void> = [];
  private workersBroken = false;
  /** Transfer buffers the workers returned (see takeBatch). */
  private readonly spare: Uint8Array[] = [];
  /** Jobs streaming through this pool now (the spares go when it drops to 0). */
  private streaming = 0;
  /** Transfer batches sent to workers, and how many of them were new buffers (not reused). */
  readonly batches = { sent: 0, allocated: 0 };
  private closed = false;

  constructor(opts: UnpackPoolOptions = {}) {
    this.size = opts.size ?? Math.max(1, Math.min(2, availableParallelism()));
    this.idleMs = opts.idleMs ?? 10_000;
  }

  reserve(): Reservation {
    let settled = false;
    const slot = new Promise<Slot | null>((resolve) => this.waiting.push(resolve));
    this.dispatch();
    return {
      extract: async (job) => {
        if (settled) throw errors.internal('unpack.reservation_used', 'unpack reservation used twice');
        settled = true;
        const s = await slot;
        if (s === null) return extractInThread(job);
        try {
          return await this.runOn(s, job);
        } finally {
          this.release(s);
        }
      },
      cancel: () => {
        if (settled) return;
        settled = true;
        void slot.then((s) => s && this.release(s));
      },
    };
  }

  /** Terminates idle workers; running jobs finish first (their workers exit when released). */
  async close(): Promise<void> {
    this.closed = true;
    const idle = this.idle.splice(0);
    await Promise.all(idle.map((s) => this.retire(s)));
  }

  /** Hands free or new workers to waiting reservations in order. */
  private dispatch(): void {
    while (this.waiting.length > 0) {
      if (this.size === 0 || this.workersBroken) {
        this.waiting.shift()!(null);
        continue;
      }
      let s = this.idle.pop();
      if (!s && this.live < this.size) s = this.spawn() ?? undefined;
      if (!s) {
        if (this.workersBroken) continue;
        return;
      }
      clearTimeout(s.idleTimer);
      s.worker.ref();
      this.waiting.shift()!(s);
    }
  }

  private spawn(): Slot | null {
    let worker: Worker;
    try {
      // The worker opens directories with openat(2) through koffi (fsat.ts) and closes them with
      // fs.closeSync; Node's tracking of a worker's fds warned "closed but not opened" for each,
      // ~600 warnings (a stack trace each) on berthd's stderr per pull. The worker closes every fd
      // it opens itself (try/finally), so the tracking's one service, closing them at exit, is
      // not needed.
      const opts = { trackUnmanagedFds: false };
      if (import.meta.url.endsWith('.ts')) {
        // Under tsx (tests, development) this module is the .ts source and so is the worker,
        // which needs tsx's loader registered inside the worker before it is imported.
        const entry = JSON.stringify(new URL('./worker.ts', import.meta.url).href);
        worker = new Worker(`import('tsx/esm/api').then((api) => { api.register(); return import(${entry}); });`, { eval: true, ...opts });
      } else {
        worker = new Worker(new URL('./worker.js', import.meta.url), opts);
      }
    } catch {
      this.workersBroken = true;
      return null;
    }
    this.live++;
    const slot: Slot = { worker };
    const crashed = (err: Error) => {
      const i = this.idle.indexOf(slot);
      if (i >= 0) this.idle.splice(i, 1);
      clearTimeout(slot.idleTimer);
      slot.onCrash?.(err);
      slot.onCrash = undefined;
    };
    worker.on('error', (err) => crashed(err));
    worker.on('exit', (code) => {
      this.live--;
      crashed(errors.internal('unpack.worker_exited', `unpack worker exited (code ${code})`));
      this.dispatch();
    });
    return slot;
  }

  private release(s: Slot): void {
    if (this.closed) {
      void this.retire(s);
      return;
    }
    s.worker.unref();
    this.idle.push(s);
    s.idleTimer = setTimeout(() => {
      const i = this.idle.indexOf(s);
      if (i >= 0) {
        this.idle.splice(i, 1);
        void this.retire(s);
      }
    }, this.idleMs);
    s.idleTimer.unref();
    this.dispatch();
  }

  private async retire(s: Slot): Promise<void> {
    clearTimeout(s.idleTimer);
    await s.worker.terminate().catch(() => undefined);
  }

  /** A BATCH-sized buffer for the next transfer: one the workers gave back, or a new one. */
  private takeBatch(): Uint8Array {
    const reused = this.spare.pop();
    if (reused) return reused;
    this.batches.allocated++;
    return new Uint8Array(BATCH);
  }

  /** Keeps a buffer a worker is done with for the next batch (at most SPARE_BATCHES of them). */
  private giveBatch(chunk: Uint8Array): void {
    if (this.spare.length < SPARE_BATCHES && chunk.buffer.byteLength === BATCH) this.spare.push(new Uint8Array(chunk.buffer, 0, BATCH));
  }

  private runOn(s: Slot, job: ExtractJob): Promise<ExtractResult> {
    const { worker } = s;
    const { source } = job;
    // A file the worker can read itself, rather than chunks sent from here.
    const file = source instanceof FileSource ? source.path : undefined;
    return new Promise<ExtractResult>((resolve, reject) => {
      let inflight = 0;
      let paused = false;
      let failure: Error | undefined;
      let finished = false;
      const send = (m: ToWorker, transfer?: ArrayBuffer[]) => worker.postMessage(m, transfer);

      const finish = (err: Error | undefined, res?: ExtractResult) => {
        if (finished) return;
        finished = true;
        if (file === undefined && --this.streaming === 0) this.spare.length = 0;
        worker.off('message', onMessage);
        source.off('data', onData);
        source.off('end', onEnd);
        source.off('error', onSourceError);
        s.onCrash = undefined;
        if (err || file !== undefined) {
          // Let the download/ingest side know nobody reads this stream any more (a file
          // source was never read on this side: just close it).
          source.on('error', () => undefined);
          source.destroy();
        }
        if (err) reject(err);
        else resolve(res!);
      };
      /** Stops the worker; the job settles when it confirms (it no longer writes then). */
      const abort = (err: Error) => {
        if (failure || finished) return;
        failure = err;
        send({ type: 'abort', error: serializeError(err) });
      };
      // The current batch: chunks are copied in as they come (the chunks' memory may be pooled or
      // still in use by the ingest writer), and a full batch is transferred to the worker.
      let batch: Uint8Array | null = null;
      let batched = 0;
      const flush = () => {
        if (batched === 0 || !batch) return;
        const chunk = batched === batch.byteLength ? batch : batch.subarray(0, batched);
        batch = null;
        batched = 0;
        // Counted before the transfer detaches the chunk (its byteLength is 0 after).
        inflight += chunk.byteLength;
        send({ type: 'data', chunk }, [chunk.buffer as ArrayBuffer]);
        this.batches.sent++;
        if (inflight >= HIGH_WATER && !paused) {
          paused = true;
          source.pause();
        }
      };
      const onData = (chunk: Buffer) => {
        if (failure) return;
        let off = 0;
        while (off < chunk.byteLength) {
          batch ??= this.takeBatch();
          const n = Math.min(batch.byteLength - batched, chunk.byteLength - off);
          batch.set(off === 0 && n === chunk.byteLength ? chunk : chunk.subarray(off, off + n), batched);
          batched += n;
          off += n;
          if (batched === batch.byteLength) flush();
        }
      };
      const onEnd = () => {
        if (failure) return;
        flush();
        send({ type: 'end' });
      };
      const onSourceError = (err: Error) => abort(err);
      const onMessage = (m: FromWorker) => {
        switch (m.type) {
          case 'ack':
            inflight -= m.bytes;
            if (m.chunk) this.giveBatch(m.chunk);
            if (paused && inflight <= LOW_WATER) {
              paused = false;
              source.resume();
            }
            break;
          case 'need-lowers': {
            const get = job.pendingLowers ?? (async () => job.lowers ?? []);
            get().then(
              (lowers) => {
                if (!finished && !failure) send({ type: 'lowers', lowers: [...lowers] });
              },
              (err: unknown) => abort(err instanceof Error ? err : new Error(String(err))),
            );
            break;
          }
          case 'done':
            finish(failure, { bytes: m.bytes, diffID: m.diffID, usage: m.usage });
            break;
          case 'error':
            finish(failure ?? deserializeError(m.error));
            break;
        }
      };
      if (file === undefined) this.streaming++;
      if (source.destroyed) {
        // Failed (or was aborted) while the job waited for a worker.
        finish(source.errored ?? errors.canceled('unpack.source_closed', 'layer stream closed before unpacking began'));
        return;
      }
      s.onCrash = (err) => finish(err);
      worker.on('message', onMessage);
      send({
        type: 'start',
        job: {
          dir: job.dir,
          mode: job.mode,
          compression: job.compression,
          lowers: job.pendingLowers ? null : [...(job.lowers ?? [])],
          file,
          ...(job.maxBytes !== undefined ? { maxBytes: job.maxBytes } : {}),
        },
      });
      // An abort (pull canceled) still arrives as an error of the source stream.
      source.on('error', onSourceError);
      if (file === undefined) {
        source.on('data', onData);
        source.on('end', onEnd);
      }
    });
  }
}

/** The same extraction on the calling thread (no worker threads available, or size 0). */
export async function extractInThread(job: ExtractJob): Promise<ApplyResult> {
  if (job.source.destroyed) throw job.source.errored ?? errors.canceled('unpack.source_closed', 'layer stream closed before unpacking began');
  const tar = decompressStream(job.source, job.compression);
  const cap = job.maxBytes !== undefined ? { maxBytes: job.maxBytes } : {};
  return applyLayer(
    tar,
    job.dir,
    job.pendingLowers ? { mode: job.mode, pendingLowers: job.pendingLowers, ...cap } : { mode: job.mode, lowers: job.lowers ?? [], ...cap },
  );
}
