/** Snapshotter interface (containerd-like) shared by the overlayfs and native drivers. */

/** Same shape as containerd.types.Mount. */
import type { Mount } from '../../mount.js';

export type { Mount };

export type SnapshotKind = 'active' | 'view' | 'committed';

export interface SnapshotInfo {
  /** Key of an active/view snapshot, or the name of a committed one. */
  key: string;
  /** Name of the committed parent, if any. */
  parent?: string;
  kind: SnapshotKind;
  created: Date;
  updated: Date;
  labels: Record<string, string>;
}

export interface SnapshotUsage {
  /** Bytes allocated on disk (st_blocks * 512), hard links counted once. */
  size: number;
  inodes: number;
}

export type DriverName = 'overlayfs' | 'native';

/** Where and how a layer is written into an active snapshot (berth extension for unpacking). */
export interface ApplyTarget {
  /** Directory the layer's entries go into (overlay: the upper dir; native: the full copy). */
  dir: string;
  /** Whiteout representation expected by this driver. */
  mode: 'overlay' | 'native';
  /** overlay: the parent chain's layer dirs, newest first. */
  lowers: string[];
}

export interface Snapshotter {
  readonly driver: DriverName;
  /** Directory holding this snapshotter's metadata and snapshot dirs. */
  readonly root: string;
  prepare(key: string, parent?: string, labels?: Record<string, string>): Promise<Mount[]>;
  view(key: string, parent?: string, labels?: Record<string, string>): Promise<Mount[]>;
  /**
   * `usage`: the snapshot's disk usage when the caller has just measured it (an unpack worker
   * does); otherwise the snapshot is walked here.
   */
  commit(name: string, key: string, labels?: Record<string, string>, usage?: SnapshotUsage): Promise<void>;
  mounts(key: string): Promise<Mount[]>;
  remove(key: string): Promise<void>;
  stat(key: string): Promise<SnapshotInfo>;
  list(): Promise<SnapshotInfo[]>;
  usage(key: string): Promise<SnapshotUsage>;
  /** Bytes and inodes used under the snapshot root (ImageFsInfo). */
  totalUsage(): Promise<SnapshotUsage>;
  applyTarget(key: string): Promise<ApplyTarget>;
  /**
   * overlay only: a fresh empty directory on the snapshots' filesystem where a layer can be
   * extracted before its parent is committed (its prepare must wait for the parent). Left-over
   * staging dirs are removed by the next start.
   */
  createStaging?(): Promise<string>;
  /** overlay only: moves a staging dir in as the (still empty) layer dir of active snapshot `key`. */
  adoptStaging?(key: string, dir: string): Promise<void>;
  close(): void;
}
