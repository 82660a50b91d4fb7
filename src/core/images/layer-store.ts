/**
 * LayerStore over a snapshotter: unpacked layers are committed snapshots named by chain id.
 */
import { pipeline } from 'node:stream';
import { isBerthError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { Snapshotter } from '../snapshots/types.js';
import { decompress } from '../unpack/decompress.js';
import { unpackLayer } from '../unpack/unpack-layer.js';
import type { LayerStore } from './ports.js';

const isChainID = (key: string) => /^sha256:[a-f0-9]{64}$/.test(key);

export class SnapshotLayerStore implements LayerStore {
  constructor(
    private readonly sn: Snapshotter,
    private readonly log: Logger,
  ) {}

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

  async apply(a: Parameters<LayerStore['apply']>[0]): Promise<void> {
    const tar = decompress(a.compression);
    pipeline(a.stream, tar, () => undefined);
    const onAbort = () => tar.destroy(a.signal?.reason instanceof Error ? a.signal.reason : new Error('pull aborted'));
    a.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await unpackLayer(this.sn, { chainID: a.chainID, parentChainID: a.parentChainID, tarStream: tar, expectedDiffID: a.diffID });
    } finally {
      a.signal?.removeEventListener('abort', onAbort);
    }
  }

  async prune(keep: Set<string>): Promise<string[]> {
    const removed: string[] = [];
    for (;;) {
      const all = await this.sn.list();
      const parents = new Set(all.map((s) => s.parent).filter((p): p is string => !!p));
      const victims = all.filter((s) => s.kind === 'committed' && isChainID(s.key) && !keep.has(s.key) && !parents.has(s.key));
      if (victims.length === 0) return removed;
      for (const v of victims) {
        await this.sn.remove(v.key);
        removed.push(v.key);
      }
    }
  }

  async usage(): Promise<{ bytes: number; inodes: number; mountpoint: string }> {
    const u = await this.sn.totalUsage();
    return { bytes: u.size, inodes: u.inodes, mountpoint: this.sn.root };
  }
}
