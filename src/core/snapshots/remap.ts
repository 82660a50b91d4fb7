/**
 * Image snapshots with ownership shifted into a user namespace's id range.
 *
 * runc 1.1 cannot idmap-mount a rootfs, so a container in a pod with its own user namespace
 * (hostUsers=false) needs an image tree whose files belong to the host ids its container ids
 * map to: container root (0) owning /etc must be host uid `hostID` on disk. As containerd 1.7
 * does, the shift is done once per (image chain, mapping) into a committed "remapped parent"
 * snapshot, and every container of that image and mapping stacks its writable layer on it.
 *
 * The remapped parent is an ordinary committed snapshot named `<chain>-remap-<hash>`, a child
 * of the image's top chain snapshot (so the image layers stay while it exists). It is built
 * from an active snapshot on the image: every entry of the merged tree is lchown'ed through
 * the overlay mount, which copies it up into that snapshot's own layer. Ids outside the
 * mapping cannot be represented in the namespace: the build fails naming the first such path
 * (containerd fails the same way). Remapper.prune() removes remapped parents no container uses.
 */
import { createHash, randomBytes } from 'node:crypto';
import { lstat, lchown, chmod, mkdtemp, readdir, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { errors, isBerthError } from '../../errors.js';
import { lgetxattr, lsetxattr } from '../unpack/sys.js';
import { mountAll, unmount } from '../../mount.js';
import type { Mount, Snapshotter } from './types.js';
import { SnapshotLabel } from './labels.js';

/** One contiguous id range: container ids [containerID, containerID+size) ↔ host ids. */
export interface IdMapping {
  containerID: number;
  hostID: number;
  size: number;
}

export interface IdMappings {
  uidMappings: readonly IdMapping[];
  gidMappings: readonly IdMapping[];
}

/** Label naming the image chain a remapped parent was built from. */
export const REMAP_OF_LABEL = SnapshotLabel.remapOf;
const REMAP_INFIX = '-remap-';

/** The host id a container id maps to, or undefined when no range holds it. */
export function toHostId(id: number, maps: readonly IdMapping[]): number | undefined {
  for (const m of maps) {
    if (id >= m.containerID && id < m.containerID + m.size) return m.hostID + (id - m.containerID);
  }
  return undefined;
}

/** True when the mapping is the identity for every id (nothing to shift). */
export function isIdentity(plan: IdMappings): boolean {
  const ident = (maps: readonly IdMapping[]) => maps.every((m) => m.containerID === m.hostID);
  return ident(plan.uidMappings) && ident(plan.gidMappings);
}

/** True for the name of a remapped parent (see remapName). */
export function isRemapName(name: string): boolean {
  return /-remap-[0-9a-f]{16}$/.test(name);
}

/** Name of the remapped parent for `parent` under `plan` (stable: same inputs, same name). */
export function remapName(parent: string, plan: IdMappings): string {
  const canon = (maps: readonly IdMapping[]) => maps.map((m) => `${m.containerID}:${m.hostID}:${m.size}`).join(',');
  const h = createHash('sha256')
    .update(`u=${canon(plan.uidMappings)};g=${canon(plan.gidMappings)}`)
    .digest('hex');
  return `${parent}${REMAP_INFIX}${h.slice(0, 16)}`;
}

const S_ISUID = 0o4000;
const CAPS_XATTR = 'security.capability';
const S_ISGID = 0o2000;

/**
 * Shifts the owner of every entry under `root` (not following symlinks, not leaving the
 * tree). chown clears set-id bits and file capabilities of regular files, so both are written
 * back. A hard-linked inode is shifted once: a later link that shows the already shifted
 * owner is skipped (with overlay's default index=off a copy-up splits the links, and the
 * others still show the old owner and are shifted in their turn). Returns the number of
 * entries changed.
 */
export async function shiftTree(root: string, plan: IdMappings): Promise<number> {
  let changed = 0;
  const shifted = new Map<string, { uid: number; gid: number }>();
  const visit = async (path: string, rel: string): Promise<void> => {
    const st = await lstat(path);
    const key = `${st.dev}:${st.ino}`;
    const done = st.nlink > 1 && !st.isDirectory() ? shifted.get(key) : undefined;
    if (done && done.uid === st.uid && done.gid === st.gid) return;
    const uid = toHostId(st.uid, plan.uidMappings);
    const gid = toHostId(st.gid, plan.gidMappings);
    if (uid === undefined || gid === undefined) {
      const which = uid === undefined ? `uid ${st.uid}` : `gid ${st.gid}`;
      throw errors.failedPrecondition(
        'snapshot.remap_unmapped_id',
        `image file ${JSON.stringify(rel || '/')} is owned by ${which}, which the pod's user namespace mapping does not cover`,
      );
    }
    if (uid !== st.uid || gid !== st.gid) {
      const caps = st.isFile() ? lgetxattr(path, CAPS_XATTR) : null;
      await lchown(path, uid, gid);
      if (st.isFile() && st.mode & (S_ISUID | S_ISGID)) await chmod(path, st.mode & 0o7777);
      if (caps !== null) lsetxattr(path, CAPS_XATTR, caps);
      if (st.nlink > 1 && !st.isDirectory()) shifted.set(key, { uid, gid });
      changed++;
    }
    if (st.isDirectory()) {
      for (const name of await readdir(path)) await visit(join(path, name), `${rel}/${name}`);
    }
  };
  await visit(root, '');
  return changed;
}

async function exists(sn: Snapshotter, key: string): Promise<boolean> {
  try {
    await sn.stat(key);
    return true;
  } catch (err) {
    if (isBerthError(err, 'NotFound')) return false;
    throw err;
  }
}

async function buildRemapped(sn: Snapshotter, parent: string, name: string, plan: IdMappings, tmpParent: string): Promise<void> {
  const work = `${name}-build-${randomBytes(4).toString('hex')}`;
  const mounts = await sn.prepare(work, parent, { [SnapshotLabel.remapBuild]: name });
  try {
    const dir = await mkdtemp(join(tmpParent, 'remap-'));
    try {
      mountAll(mounts, dir);
      try {
        await shiftTree(dir, plan);
      } finally {
        unmount(dir, { detach: true, all: true });
      }
    } finally {
      await rmdir(dir).catch(() => undefined);
    }
    await sn.commit(name, work, { [REMAP_OF_LABEL]: parent });
  } catch (err) {
    await sn.remove(work).catch(() => undefined);
    throw err;
  }
}

/**
 * The remapped parents of one snapshotter: builds in flight (keyed by remapped parent name:
 * concurrent callers share one build) and prepare() calls in flight per parent, which prune()
 * keeps its hands off. It lives as long as the snapshotter it is made for (one per
 * RuntimeContext: ctx.remapper), so two snapshotters in one process share nothing.
 */
export class Remapper {
  private readonly building = new Map<string, Promise<void>>();
  private readonly inUse = new Map<string, number>();

  constructor(readonly snapshotter: Snapshotter) {}

  /** True while a build of, or a prepare() on, the remapped parent `name` runs. */
  busy(name: string): boolean {
    return this.building.has(name) || this.inUse.has(name);
  }

  /**
   * Prepares the active snapshot `key` for a container whose ids are shifted by `plan`: on the
   * remapped parent of `parent` (built on first use), or directly on `parent` when the mapping
   * is the identity.
   */
  async prepare(key: string, parent: string, plan: IdMappings, labels: Record<string, string>, tmpParent: string): Promise<Mount[]> {
    const sn = this.snapshotter;
    if (isIdentity(plan)) return sn.prepare(key, parent, labels);
    const name = remapName(parent, plan);
    // Held from the existence check until the child exists: prune() keeps its hands off.
    this.inUse.set(name, (this.inUse.get(name) ?? 0) + 1);
    let mounts: Mount[];
    try {
      if (!(await exists(sn, name))) {
        let p = this.building.get(name);
        if (!p) {
          p = buildRemapped(sn, parent, name, plan, tmpParent).finally(() => this.building.delete(name));
          this.building.set(name, p);
        }
        await p;
      }
      mounts = await sn.prepare(key, name, labels);
    } finally {
      const n = (this.inUse.get(name) ?? 1) - 1;
      if (n > 0) this.inUse.set(name, n);
      else this.inUse.delete(name);
    }
    try {
      // overlay shows the upper dir's own owner and mode for the merged root: a fresh upper dir
      // belongs to host root, which the container cannot write through; give it the remapped
      // image root's. (The native driver's copy already has them.)
      const t = await sn.applyTarget(key);
      if (t.lowers[0] !== undefined) {
        const top = await lstat(t.lowers[0]);
        await lchown(t.dir, top.uid, top.gid);
        await chmod(t.dir, top.mode & 0o7777);
      }
    } catch (err) {
      await sn.remove(key).catch(() => undefined);
      throw err;
    }
    return mounts;
  }

  /** Removes remapped parents no snapshot stacks on any more; returns their names. */
  async prune(): Promise<string[]> {
    const sn = this.snapshotter;
    const all = await sn.list();
    const parents = new Set(all.map((s) => s.parent).filter((p): p is string => !!p));
    const removed: string[] = [];
    for (const s of all) {
      if (s.kind !== 'committed' || !(REMAP_OF_LABEL in s.labels) || parents.has(s.key) || this.busy(s.key)) continue;
      try {
        await sn.remove(s.key);
        removed.push(s.key);
      } catch {
        /* taken meanwhile by a new container: keep it */
      }
    }
    return removed;
  }
}
