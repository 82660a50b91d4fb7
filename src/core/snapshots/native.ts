/**
 * native snapshotter: every snapshot is a full, independent copy of its parent (see copy.ts);
 * mounts are plain bind mounts. Slow and space-hungry, but works on any filesystem; used when
 * overlayfs is unavailable.
 */
import { mkdir } from 'node:fs/promises';
import { DirSnapshotter } from './base.js';
import { copyTree } from './copy.js';
import type { SnapshotRow } from './metastore.js';
import type { ApplyTarget, Mount } from './types.js';

export class NativeSnapshotter extends DirSnapshotter {
  readonly driver = 'native' as const;

  protected override async createDirs(row: SnapshotRow, parents: SnapshotRow[]): Promise<void> {
    await mkdir(this.fsDir(row.id), { recursive: true, mode: 0o755 });
    const parent = parents[0];
    if (parent) await copyTree(this.fsDir(parent.id), this.fsDir(row.id));
  }

  protected override mountsOf(row: SnapshotRow): Mount[] {
    return [{ type: 'bind', source: this.fsDir(row.id), options: [row.kind === 'view' ? 'ro' : 'rw', 'rbind'] }];
  }

  protected override applyTargetOf(row: SnapshotRow): ApplyTarget {
    return { dir: this.fsDir(row.id), mode: 'native', lowers: [] };
  }
}
