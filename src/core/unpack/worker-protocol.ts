/**
 * Messages between the unpack pool (main thread) and an unpack worker (worker.ts). One job at a
 * time per worker: `start`, then the compressed layer as `data` chunks (flow-controlled by the
 * worker's `ack`s, which return the chunks' memory), then `end`. The worker may ask for the lower dirs (`need-lowers`) when the
 * layer turns out to need them; it always finishes with exactly one `done` or `error`, also
 * after an `abort`, so the caller knows it has stopped writing before cleaning up.
 */
import { BerthError, berthError, type ErrorKind } from '../../errors.js';
import { isErrorCode, kindOf } from '../../error-codes.js';
import type { Compression } from './decompress.js';
import type { WhiteoutMode } from './apply.js';
import type { SnapshotUsage } from '../snapshots/types.js';

export interface JobSpec {
  /** Directory the layer is extracted into. */
  dir: string;
  mode: WhiteoutMode;
  compression: Compression;
  /** Lower dirs, newest first; null when they must be asked for (`need-lowers`). */
  lowers: string[] | null;
  /** The blob is this file: the worker reads it (no `data` messages follow). */
  file?: string;
  /** Most uncompressed bytes of the layer. */
  maxBytes?: number;
}

export type ToWorker =
  | { type: 'start'; job: JobSpec }
  | { type: 'data'; chunk: Uint8Array }
  | { type: 'end' }
  | { type: 'lowers'; lowers: string[] }
  | { type: 'abort'; error: SerializedError };

export type FromWorker =
  /**
   * `bytes` of `data` consumed by the decompressor; `chunk` is that batch's memory handed back
   * (transferred) for the next batch, so the two threads reuse a few buffers instead of leaving
   * one dead buffer per batch for V8's next full GC.
   */
  | { type: 'ack'; bytes: number; chunk?: Uint8Array }
  | { type: 'need-lowers' }
  | { type: 'done'; bytes: number; diffID: string; usage: SnapshotUsage }
  | { type: 'error'; error: SerializedError };

export interface SerializedError {
  message: string;
  /** BerthError kind, when it was one. */
  kind?: ErrorKind;
  /** BerthError code or errno name ("EPERM"). */
  code?: string;
  errno?: number;
  syscall?: string;
  path?: string;
}

export function serializeError(err: unknown): SerializedError {
  if (err instanceof BerthError) return { message: err.message, kind: err.kind, code: err.code };
  const e = err as NodeJS.ErrnoException;
  const out: SerializedError = { message: e instanceof Error ? e.message : String(err) };
  if (typeof e?.code === 'string') out.code = e.code;
  if (typeof e?.errno === 'number') out.errno = e.errno;
  if (typeof e?.syscall === 'string') out.syscall = e.syscall;
  if (typeof e?.path === 'string') out.path = e.path;
  return out;
}

/** Rebuilds an error thrown on the other side: same class of error, kind and code. */
export function deserializeError(s: SerializedError): Error {
  if (s.kind !== undefined && s.code !== undefined && isErrorCode(s.code) && kindOf(s.code) === s.kind) return berthError(s.code, s.message);
  const e = new Error(s.message) as NodeJS.ErrnoException;
  if (s.code !== undefined) e.code = s.code;
  if (s.errno !== undefined) e.errno = s.errno;
  if (s.syscall !== undefined) e.syscall = s.syscall;
  if (s.path !== undefined) e.path = s.path;
  return e;
}
