/**
 * unpackLayer: writes one layer into a committed snapshot named by its chainID.
 *
 * prepare(tmpKey, parentChainID) → applyLayer into the driver's apply dir → commit(chainID).
 * Idempotent: when chainID is already committed the stream is drained (so a tee'd content
 * ingest still completes) and nothing is written. Concurrent unpacks of the same chainID both
 * succeed: the loser of the commit race discards its copy. On any failure the temporary
 * snapshot is removed.
 */
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { errors, isBerthError } from '../../errors.js';
import type { Snapshotter } from '../snapshots/types.js';
import { applyLayer } from './apply.js';

export const DIFFID_LABEL = 'berth.io/diff-id';

export interface UnpackLayerOptions {
  chainID: string;
  parentChainID?: string;
  /** The uncompressed layer tar (already decompressed). */
  tarStream: Readable;
  /** When given, the layer's diffID must equal it (from the image config's rootfs.diff_ids). */
  expectedDiffID?: string;
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
  const existing = await committed(sn, opts.chainID);
  if (existing) {
    opts.tarStream.resume();
    return { chainID: opts.chainID, diffID: existing.diffID ?? opts.expectedDiffID ?? '', bytes: 0, existed: true };
  }
  const key = `extract-${randomBytes(6).toString('hex')} ${opts.chainID}`;
  await sn.prepare(key, opts.parentChainID);
  try {
    const target = await sn.applyTarget(key);
    const res = await applyLayer(opts.tarStream, target.dir, { mode: target.mode, lowers: target.lowers });
    if (opts.expectedDiffID !== undefined && res.diffID !== opts.expectedDiffID) {
      throw errors.failedPrecondition(
        'unpack.diffid_mismatch',
        `layer diffID mismatch: expected ${opts.expectedDiffID}, got ${res.diffID}`,
      );
    }
    try {
      await sn.commit(opts.chainID, key, { [DIFFID_LABEL]: res.diffID });
    } catch (err) {
      // Another unpack of the same layer won the race: its snapshot is as good as ours.
      if (!isBerthError(err, 'AlreadyExists')) throw err;
      await sn.remove(key);
      return { chainID: opts.chainID, diffID: res.diffID, bytes: res.bytes, existed: true };
    }
    return { chainID: opts.chainID, diffID: res.diffID, bytes: res.bytes, existed: false };
  } catch (err) {
    opts.tarStream.destroy();
    await sn.remove(key).catch(() => {});
    throw err;
  }
}
