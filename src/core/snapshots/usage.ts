/** Disk usage of a directory tree (du-like: allocated blocks, each inode counted once). */
import { lstatSync, readdirSync } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { SnapshotUsage } from './types.js';

export async function diskUsage(dir: string): Promise<SnapshotUsage> {
  const seen = new Set<string>();
  let size = 0;
  let inodes = 0;
  // Iterative walk: deep trees must not grow the JS stack.
  const stack = [dir];
  while (stack.length > 0) {
    const p = stack.pop()!;
    let st;
    try {
      st = await lstat(p);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw err;
    }
    const id = `${st.dev}:${st.ino}`;
    if (seen.has(id)) continue;
    seen.add(id);
    inodes += 1;
    size += st.blocks * 512;
    if (st.isDirectory()) {
      for (const name of await readdir(p)) stack.push(join(p, name));
    }
  }
  return { size, inodes };
}

/**
 * diskUsage with synchronous calls: for worker threads (an unpack worker measures the layer it
 * just wrote, so the commit on the main thread need not walk it again).
 */
export function diskUsageSync(dir: string): SnapshotUsage {
  const seen = new Set<string>();
  let size = 0;
  let inodes = 0;
  const stack = [dir];
  while (stack.length > 0) {
    const p = stack.pop()!;
    const st = lstatSync(p, { throwIfNoEntry: false });
    if (!st) continue;
    const id = `${st.dev}:${st.ino}`;
    if (seen.has(id)) continue;
    seen.add(id);
    inodes += 1;
    size += st.blocks * 512;
    if (st.isDirectory()) {
      for (const name of readdirSync(p)) stack.push(join(p, name));
    }
  }
  return { size, inodes };
}
