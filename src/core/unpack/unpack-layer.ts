/**
 * unpackLayer: writes one layer into a committed snapshot named by its chainID.
 *
 * prepare(tmpKey, parentChainID) → extract into the driver's apply dir → commit(chainID).
 * Idempotent: when chainID is already committed the stream is drained (so a tee'd content
 * ingest still completes) and nothing is written. Concurrent unpacks of the same chainID both
 * succeed: the loser of the commit race discards its copy. On any failure the temporary
 * snapshot is removed.
 *
 * With `parentReady` the parent is still being unpacked. On overlayfs the layer needs nothing
 * from its parent unless an entry's parent directory is missing from the layer itself, so it is
 * extracted right away into a staging dir; the snapshot is prepared (and the lowers handed to
 * the extraction, should it ask for them) once the parent is committed, and the staging dir
 * becomes the snapshot's layer dir. Commits therefore still happen in chain order. The native
 * driver copies the parent at prepare time, so there the extraction waits for the parent.
 */
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { errors, isBerthError } from '../../errors.js';
import type { Snapshotter } from '../snapshots/types.js';
import { SnapshotLabel } from '../snapshots/labels.js';
import type { Compression } from './decompress.js';
import { extractInThread, type ExtractJob, type ExtractResult, type Reservation } from './pool.js';

export const DIFFID_LABEL = SnapshotLabel.diffId;

export interface UnpackLayerOptions {
  chainID: string;
  parentChainID?: string;
  /** The layer tar, compressed as `compression` says (default: not compressed). */
  tarStream: Readable;
  compression?: Compression;
  /** When given, the layer's diffID must equal it (from the image config's rootfs.diff_ids). */
  expectedDiffID?: string;
  /** Extract on this reserved worker (pool.ts) instead of on the calling thread. */
  worker?: Reservation;
  /** The parent is still being unpacked: settles once it is committed or has failed. */
  parentReady?: Promise<void>;
  /** Most uncompressed bytes of the layer (default apply.ts MAX_LAYER_BYTES). */
  maxBytes?: number;
}

export interface UnpackLayerResult {
  diffID: string;
  chainID: string;
  /** Uncompressed bytes applied (0 when the layer already existed). */
  bytes: number;
  /** True when the snapshot already existed and nothing was unpacked. */
  existed: boolean;
}

async function committed(sn: Snapshotter, key: string): Promise<{ diffID?: string } | null> {
  try {
    const info = await sn.stat(key);
    if (info.kind !== 'committed') return null;
    const d = info.labels[DIFFID_LABEL];
    return d === undefined ? {} : { diffID: d };
  } catch (err) {
    if (isBerthError(err, 'NotFound')) return null;
    throw err;
  }
}

export async function unpackLayer(sn: Snapshotter, opts: UnpackLayerOptions): Promise<UnpackLayerResult> {
  const source = opts.tarStream;
  // Until the extraction reads it, an error of the stream (a failed download, an abort) must not
  // go unhandled; the extraction sees it through `destroyed`/`errored`.
  source.on('error', () => undefined);
  const extract = (job: Omit<ExtractJob, 'source' | 'compression'>): Promise<ExtractResult> => {
    const full: ExtractJob = { ...job, source, compression: opts.compression ?? 'none', ...(opts.maxBytes !== undefined ? { maxBytes: opts.maxBytes } : {}) };
    return opts.worker ? opts.worker.extract(full) : extractInThread(full);
  };
  const staged = opts.parentReady !== undefined && sn.driver === 'overlayfs' && sn.createStaging && sn.adoptStaging;
  try {
    if (!staged && opts.parentReady) await opts.parentReady;
    const existing = await committed(sn, opts.chainID);
    if (existing) {
      opts.worker?.cancel();
      source.resume();
      return { chainID: opts.chainID, diffID: existing.diffID ?? opts.expectedDiffID ?? '', bytes: 0, existed: true };
    }
  } catch (err) {
    opts.worker?.cancel();
    source.destroy();
    throw err;
  }
  const key = `extract-${randomBytes(6).toString('hex')} ${opts.chainID}`;
  let prepared = false;
  let staging: string | undefined;
  let lowers: Promise<string[]> | undefined;
  try {
    let res: ExtractResult;
    if (staged) {
      staging = await sn.createStaging!();
      // The parent's failure stops this extraction too (it would be thrown away).
      const parentFailed = (err: unknown) => source.destroy(err instanceof Error ? err : new Error(String(err)));
      opts.parentReady!.catch(parentFailed);
      const prepare = (): Promise<string[]> =>
        (lowers ??= (async () => {
          await opts.parentReady;
          await sn.prepare(key, opts.parentChainID);
          prepared = true;
          return (await sn.applyTarget(key)).lowers;
        })());
      res = await extract({ dir: staging, mode: 'overlay', pendingLowers: prepare });
      await prepare();
      await sn.adoptStaging!(key, staging);
      staging = undefined;
    } else {
      await sn.prepare(key, opts.parentChainID);
      prepared = true;
      const target = await sn.applyTarget(key);
      res = await extract({ dir: target.dir, mode: target.mode, lowers: target.lowers });
    }
    if (opts.expectedDiffID !== undefined && res.diffID !== opts.expectedDiffID) {
      throw errors.failedPrecondition('unpack.diffid_mismatch', `layer diffID mismatch: expected ${opts.expectedDiffID}, got ${res.diffID}`);
    }
    try {
      await sn.commit(opts.chainID, key, { [DIFFID_LABEL]: res.diffID }, res.usage);
    } catch (err) {
      // Another unpack of the same layer won the race: its snapshot is as good as ours.
      if (!isBerthError(err, 'AlreadyExists')) throw err;
      await sn.remove(key);
      return { chainID: opts.chainID, diffID: res.diffID, bytes: res.bytes, existed: true };
    }
    return { chainID: opts.chainID, diffID: res.diffID, bytes: res.bytes, existed: false };
  } catch (err) {
    opts.worker?.cancel();
    source.destroy();
    // A prepare still waiting for the parent must finish before its snapshot can be removed.
    if (lowers) await lowers.catch(() => {});
    if (prepared) await sn.remove(key).catch(() => {});
    if (staging !== undefined) await rm(staging, { recursive: true, force: true }).catch(() => {});
    throw err;
  }
}
