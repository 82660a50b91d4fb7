/**
 * LayerStore over a snapshotter: unpacked layers are committed snapshots named by chain id.
 *
 * Layers unpack on worker threads (unpack/pool.ts). A layer may be applied while its parent is
 * still being applied by this store: it starts extracting at once and commits after the parent
 * (see unpack-layer.ts), so a pull can keep both cores busy.
 */
import { isBerthError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { Snapshotter } from '../snapshots/types.js';
import { UnpackPool } from '../unpack/pool.js';
import { unpackLayer } from '../unpack/unpack-layer.js';
import type { LayerStore } from './ports.js';

const isChainID = (key: string) => /^sha256:[a-f0-9]{64}$/.test(key);

export class SnapshotLayerStore implements LayerStore {
  /** Applies in progress by chain id; each settles once its snapshot is committed (or failed). */
  private readonly inflight = new Map<string, Promise<void>>();
  readonly pool: UnpackPool;

  constructor(
    private readonly sn: Snapshotter,
    private readonly log: Logger,
    opts: { pool?: UnpackPool } = {},
  ) {
    this.pool = opts.pool ?? new UnpackPool();
  }

  /** How many layers are worth applying at the same time (one per unpack worker). */
  get parallelism(): number {
    return Math.max(1, this.pool.size);
  }

  /** Remove snapshots of unpacks that were interrupted (berthd killed mid-pull). */
  async cleanupInterrupted(): Promise<number> {
    let n = 0;
    for (const s of await this.sn.list()) {
      if (s.kind === 'active' && s.key.startsWith('extract-')) {
        await this.sn.remove(s.key).catch((err: unknown) => this.log.warn('cannot remove interrupted unpack', { key: s.key, error: err }));
        n++;
      }
    }
    return n;
  }

  async has(chainID: string): Promise<boolean> {
    try {
      return (await this.sn.stat(chainID)).kind === 'committed';
    } catch (err) {
      if (isBerthError(err, 'NotFound')) return false;
      throw err;
    }
  }

  apply(a: Parameters<LayerStore['apply']>[0]): Promise<void> {
    // Synchronous up to here on purpose: the worker slot and the in-flight entry are taken in
    // call order, so a parent always gets a worker before its child asks for one.
    const worker = this.pool.reserve();
    const parentReady = a.parentChainID !== undefined ? this.inflight.get(a.parentChainID) : undefined;
    const done = this.applyNow(a, worker, parentReady);
    this.inflight.set(a.chainID, done);
    done
      .catch(() => undefined)
      .finally(() => {
        if (this.inflight.get(a.chainID) === done) this.inflight.delete(a.chainID);
      });
    return done;
  }

  private async applyNow(
    a: Parameters<LayerStore['apply']>[0],
    worker: ReturnType<UnpackPool['reserve']>,
    parentReady: Promise<void> | undefined,
  ): Promise<void> {
    const onAbort = () => a.stream.destroy(a.signal?.reason instanceof Error ? a.signal.reason : new Error('pull aborted'));
    a.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      if (a.signal?.aborted) onAbort();
      await unpackLayer(this.sn, {
        chainID: a.chainID,
        parentChainID: a.parentChainID,
        tarStream: a.stream,
        compression: a.compression,
        expectedDiffID: a.diffID,
        worker,
        parentReady,
      });
    } finally {
      a.signal?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Removes committed layers not in `keep` (children first). A layer that cannot be removed is
   * logged and kept (with its ancestors), never an error: a start-up collection must not stop
   * berthd, and the next collection tries again.
   */
  async prune(keep: Set<string>): Promise<string[]> {
    const removed: string[] = [];
    const failed = new Set<string>();
    for (;;) {
      const all = await this.sn.list();
      const parents = new Set(all.map((s) => s.parent).filter((p): p is string => !!p));
      const victims = all.filter((s) => s.kind === 'committed' && isChainID(s.key) && !keep.has(s.key) && !parents.has(s.key) && !failed.has(s.key));
      if (victims.length === 0) return removed;
      for (const v of victims) {
        try {
          await this.sn.remove(v.key);
          removed.push(v.key);
        } catch (err) {
          failed.add(v.key);
          this.log.warn('cannot remove an unused layer, kept for the next collection', { layer: v.key, error: err });
        }
      }
    }
  }

  async usage(): Promise<{ bytes: number; inodes: number; mountpoint: string }> {
    const u = await this.sn.totalUsage();
    return { bytes: u.size, inodes: u.inodes, mountpoint: this.sn.root };
  }
}
