/**
 * Disk usage of a directory tree (du-like: allocated blocks, each inode counted once).
 *
 * The trees are written by containers and images: they may be deeper than PATH_MAX and a running
 * container may swap any directory for a symlink, so the walk is fd-relative with O_NOFOLLOW
 * (src/fsat.ts). An entry that cannot be measured is skipped and logged, never an error: one
 * container's tree must not make ImageFsInfo fail for the node.
 */
import { log } from '../../log.js';
import { treeUsage, treeUsageSync, type TreeUsage } from '../../fsat.js';
import type { SnapshotUsage } from './types.js';

function report(dir: string, u: TreeUsage): SnapshotUsage {
  if (u.errors > 0) log.warn('disk usage: entries skipped', { dir, skipped: u.errors, first: u.firstError });
  return { size: u.size, inodes: u.inodes };
}

export async function diskUsage(dir: string): Promise<SnapshotUsage> {
  return report(dir, await treeUsage(dir));
}

/**
 * diskUsage with synchronous calls: for worker threads (an unpack worker measures the layer it
 * just wrote, so the commit on the main thread need not walk it again).
 */
export function diskUsageSync(dir: string): SnapshotUsage {
  return report(dir, treeUsageSync(dir));
}
