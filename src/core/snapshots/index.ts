/**
 * Public surface of the snapshotters. createSnapshotter picks overlayfs when it works under
 * the given root and falls back to native otherwise (reporting why).
 */
import { join } from 'node:path';
import { errors } from '../../errors.js';
import { log } from '../../log.js';
import { NativeSnapshotter } from './native.js';
import { OverlaySnapshotter, checkOverlaySupport } from './overlay.js';
import type { DriverName, Snapshotter } from './types.js';

export type { ApplyTarget, DriverName, Mount, SnapshotInfo, SnapshotKind, SnapshotUsage, Snapshotter } from './types.js';
export { OverlaySnapshotter, checkOverlaySupport } from './overlay.js';
export { NativeSnapshotter } from './native.js';
export { mountAll, unmount, parseMountOptions } from '../../mount.js';
export { chainID, chainIDs } from './chainid.js';

export interface CreateSnapshotterOptions {
  /** Parent directory; each driver lives in `<root>/<driver>` (e.g. `<state>/snapshots/overlayfs`). */
  root: string;
  /** 'auto' (default) tries overlayfs and falls back to native. */
  driver?: DriverName | 'auto';
}

export interface CreatedSnapshotter {
  snapshotter: Snapshotter;
  /** Set when overlayfs was wanted ('auto') but unusable. */
  fallbackReason?: string;
}

export async function createSnapshotter(opts: CreateSnapshotterOptions): Promise<CreatedSnapshotter> {
  const driver = opts.driver ?? 'auto';
  let fallbackReason: string | undefined;
  if (driver === 'overlayfs' || driver === 'auto') {
    const reason = await checkOverlaySupport(join(opts.root, 'overlayfs'));
    if (reason === null) {
      const s = new OverlaySnapshotter(join(opts.root, 'overlayfs'));
      await s.init();
      return { snapshotter: s };
    }
    if (driver === 'overlayfs') {
      throw errors.failedPrecondition('snapshot.overlay_unsupported', reason);
    }
    fallbackReason = reason;
    log.warn('overlayfs unusable, falling back to the native snapshotter', { reason });
  }
  const s = new NativeSnapshotter(join(opts.root, 'native'));
  await s.init();
  return fallbackReason === undefined ? { snapshotter: s } : { snapshotter: s, fallbackReason };
}
export { SnapshotLabel, LEGACY_SNAPSHOT_LABELS, migrateSnapshotLabels } from './labels.js';
export { Remapper, remapName, isRemapName, shiftTree, toHostId, isIdentity, REMAP_OF_LABEL, type IdMapping, type IdMappings } from './remap.js';
