/**
 * syncfs(2): flush one filesystem's dirty data and metadata. Blobs are not fsync'ed one by
 * one: on this class of machine a pull's per-blob fsyncs stalled the concurrent unpack's file
 * creations behind journal commits (a 30k-file image pulled in 13.8 s with them, 5.1 s
 * without). Instead a pull flushes once, before its image record is written, and berthd's
 * start-up garbage collection removes blobs no image record references — so content that
 * may not have reached the disk is never trusted. Runs on a koffi worker thread.
 */
import { closeSync, openSync, constants } from 'node:fs';
import { libc as loadLibc } from '../../libc.js';

type SyncFs = { async: (fd: number, cb: (err: unknown, res: number) => void) => void };
// Process-wide: libc syncfs, bound once (koffi handles belong to the process).
let fn: SyncFs | null | undefined;

function load(): SyncFs | null {
  if (fn !== undefined) return fn;
  try {
    fn = loadLibc().lib.func('int syncfs(int fd)') as unknown as SyncFs;
  } catch {
    fn = null;
  }
  return fn;
}

/** Flush the filesystem holding `path`; falls back to nothing where syncfs is unavailable. */
export async function syncFilesystem(path: string): Promise<void> {
  const f = load();
  if (!f) return;
  const fd = openSync(path, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await new Promise<void>((resolve, reject) =>
      f.async(fd, (err, res) => (err ? reject(err as Error) : res !== 0 ? reject(new Error(`syncfs ${path} failed`)) : resolve())),
    );
  } finally {
    closeSync(fd);
  }
}
