/**
 * Mounting the rootfs Mounts a Create request carries onto <bundle>/rootfs, and unmounting
 * them on Delete, through the libc mount helper of core/snapshots (mount(2), no mount(8)).
 */
import { readFileSync } from 'node:fs';
import { errors } from '../errors.js';
import { mountAll as sysMountAll, unmount } from '../mount.js';

export interface RootfsMount {
  type: string;
  source: string;
  options: string[];
}

/**
 * containerd sends bind mounts as type "bind" with options like ["rbind", "ro"]; a bare
 * type "bind" without a bind option still means a bind mount.
 */
export function normalizeMount(m: RootfsMount): RootfsMount {
  const hasBind = m.options.some((o) => o === 'bind' || o === 'rbind');
  if (m.type === 'bind' && !hasBind) return { ...m, options: ['bind', ...m.options] };
  return m;
}

export async function mountAll(mounts: readonly RootfsMount[], target: string): Promise<void> {
  try {
    sysMountAll(mounts.map(normalizeMount), target);
  } catch (err) {
    await unmountAll(target).catch(() => undefined);
    const what = mounts.map((m) => `${m.type}:${m.source}`).join(', ');
    throw errors.internal('shim.mount_failed', `mount ${what} on ${target}: ${err instanceof Error ? err.message : String(err)}`, err);
  }
}

function isMountpoint(target: string): boolean {
  try {
    // mountinfo field 5 is the mount point (octal-escaped spaces are not expected in bundles).
    return readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .some((l) => l.split(' ')[4] === target);
  } catch {
    return false;
  }
}

/** Unmount everything stacked on `target` (idempotent). */
export async function unmountAll(target: string): Promise<void> {
  if (!isMountpoint(target)) return;
  try {
    unmount(target, { all: true });
  } catch {
    // Busy (e.g. a process still holds a file): detach so the bundle can still be removed.
    unmount(target, { detach: true, all: true });
  }
}
