/**
 * Common part of the directory-based snapshotters.
 *
 * Layout under `root` (berthd passes `<state root>/snapshots/<driver>`):
 *   metadata.db            snapshot records (schema in metastore.ts)
 *   snapshots/<id>/fs      the snapshot's files (overlay: its upper/layer dir; native: full copy)
 *   snapshots/<id>/work    overlay workdir of active snapshots
 *   snapshots/rm-<id>      a snapshot being removed (its row goes only once this is gone)
 * Ids are small integers so that long overlay lowerdir lists fit the mount data page.
 *
 * Snapshot trees are written by containers: they are removed fd-relatively (src/fsat.ts), since
 * they can be deeper than PATH_MAX and hold symlinks a path walk would follow.
 */
import { renameSync } from 'node:fs';
import { chmod, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setImmediate as turn } from 'node:timers/promises';
import { errors } from '../../errors.js';
import { removeTree } from '../../fsat.js';
import { log } from '../../log.js';
import { MetaStore, toInfo, type SnapshotRow } from './metastore.js';
import type { ApplyTarget, DriverName, Mount, SnapshotInfo, SnapshotUsage, Snapshotter } from './types.js';
import { diskUsage } from './usage.js';

export abstract class DirSnapshotter implements Snapshotter {
  abstract readonly driver: DriverName;
  readonly root: string;
  private store: MetaStore | null = null;

  constructor(root: string) {
    this.root = root;
  }

  /** Snapshots whose directory is being removed: no child may be created on them. */
  private readonly removing = new Set<string>();
  /** Last walk of each active/view snapshot's tree, by snapshot id (see totalUsage). */
  private readonly walked = new Map<number, { usage: SnapshotUsage; at: number }>();
  /** The background re-walk of stale entries, while one runs. */
  private refreshing: Promise<void> | undefined;
  /** How old a walk may be before totalUsage starts a new one (kubelet asks every 10 s). */
  usageMaxAgeMs = 10_000;

  /**
   * Opens the metadata and removes snapshot dirs left without a record (interrupted removes,
   * staging dirs). A leftover that cannot be removed is logged and left: it never stops berthd.
   */
  async init(): Promise<void> {
    // 0700 at every start, not only when created: snapshot trees hold image files (setuid
    // binaries among them) that no local user may reach.
    for (const d of [this.root, join(this.root, 'snapshots')]) {
      await mkdir(d, { recursive: true, mode: 0o700 });
      await chmod(d, 0o700);
    }
    this.store = new MetaStore(this.root);
    const ids = this.store.ids();
    for (const name of await readdir(join(this.root, 'snapshots'))) {
      if (/^[0-9]+$/.test(name) && ids.has(Number(name))) continue;
      try {
        await removeTree(join(this.root, 'snapshots', name));
        const removed = /^rm-([0-9]+)$/.exec(name);
        if (removed) this.store.removeId(Number(removed[1]));
      } catch (err) {
        log.warn('snapshots: cannot remove a leftover directory, skipped', { dir: join(this.root, 'snapshots', name), error: err });
      }
    }
  }

  close(): void {
    this.store?.close();
    this.store = null;
  }

  protected get meta(): MetaStore {
    if (!this.store) throw errors.failedPrecondition('snapshot.not_initialized', 'snapshotter not initialized (call init())');
    return this.store;
  }

  protected snapDir(id: number): string {
    return join(this.root, 'snapshots', String(id));
  }

  protected fsDir(id: number): string {
    return join(this.snapDir(id), 'fs');
  }

  protected workDir(id: number): string {
    return join(this.snapDir(id), 'work');
  }

  /** Creates the directories of a new snapshot; `parents` is the chain, newest first. */
  protected abstract createDirs(row: SnapshotRow, parents: SnapshotRow[]): Promise<void>;
  protected abstract mountsOf(row: SnapshotRow, parents: SnapshotRow[]): Mount[];
  protected abstract applyTargetOf(row: SnapshotRow, parents: SnapshotRow[]): ApplyTarget;

  async prepare(key: string, parent?: string, labels: Record<string, string> = {}): Promise<Mount[]> {
    return this.create('active', key, parent, labels);
  }

  async view(key: string, parent?: string, labels: Record<string, string> = {}): Promise<Mount[]> {
    return this.create('view', key, parent, labels);
  }

  private async create(kind: 'active' | 'view', key: string, parent: string | undefined, labels: Record<string, string>): Promise<Mount[]> {
    if (parent !== undefined && this.removing.has(parent)) {
      throw errors.notFound('snapshot.parent_not_found', `parent snapshot ${JSON.stringify(parent)} is being removed`);
    }
    const row = this.meta.create(key, parent, kind, labels);
    try {
      const parents = this.meta.chain(row.parent);
      await this.createDirs(row, parents);
      return this.mountsOf(row, parents);
    } catch (err) {
      // Leave nothing behind: no record, no directory. A directory that resists removal is
      // left as rm-<id> (ids are never reused) for the start-up sweep; the caller gets its error.
      try {
        await this.discard(row.id);
      } catch (cleanupErr) {
        log.warn('snapshots: cannot remove the directory of a failed prepare; left for the start-up sweep', { id: row.id, error: cleanupErr });
      }
      this.meta.remove(key);
      throw err;
    }
  }

  async commit(name: string, key: string, labels?: Record<string, string>, measured?: SnapshotUsage): Promise<void> {
    const row = this.meta.mustGet(key);
    if (row.kind !== 'active') {
      throw errors.failedPrecondition('snapshot.not_active', `snapshot ${JSON.stringify(key)} is ${row.kind}, not active`);
    }
    const usage = measured ?? (await diskUsage(this.fsDir(row.id)));
    this.meta.commit(name, key, labels, usage);
    // The workdir only serves mounts of the active snapshot.
    await removeTree(this.workDir(row.id));
  }

  async mounts(key: string): Promise<Mount[]> {
    const row = this.meta.mustGet(key);
    if (row.kind === 'committed') {
      throw errors.failedPrecondition('snapshot.committed', `snapshot ${JSON.stringify(key)} is committed; create a view or an active snapshot on it`);
    }
    return this.mountsOf(row, this.meta.chain(row.parent));
  }

  async applyTarget(key: string): Promise<ApplyTarget> {
    const row = this.meta.mustGet(key);
    if (row.kind !== 'active') {
      throw errors.failedPrecondition('snapshot.not_active', `snapshot ${JSON.stringify(key)} is ${row.kind}, not active`);
    }
    return this.applyTargetOf(row, this.meta.chain(row.parent));
  }

  /**
   * Removes the snapshot's directory, then its record: a removal that fails keeps the record
   * (the call fails, a retry or the start-up sweep finishes it). The directory is first renamed
   * to `rm-<id>`, so a half-removed snapshot is never found at its own path.
   */
  async remove(key: string): Promise<void> {
    const row = this.meta.removable(key);
    this.removing.add(key);
    try {
      await this.discard(row.id);
      this.meta.remove(key);
    } finally {
      this.removing.delete(key);
    }
  }

  /** Renames snapshots/<id> to rm-<id> (synchronously: nothing can use it after) and removes that. */
  private async discard(id: number): Promise<void> {
    const doomed = join(this.root, 'snapshots', `rm-${id}`);
    try {
      renameSync(this.snapDir(id), doomed);
    } catch (err) {
      // ENOENT: an earlier attempt renamed it already (or it never had a directory).
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    await removeTree(doomed);
  }

  async stat(key: string): Promise<SnapshotInfo> {
    return toInfo(this.meta.mustGet(key));
  }

  async list(): Promise<SnapshotInfo[]> {
    return this.meta.all().map(toInfo);
  }

  /**
   * One snapshot's usage: a committed one's from its commit; an active one's from its last
   * walk, which the background pass renews once it is more than usageMaxAgeMs old (as in
   * totalUsage: ListContainerStats asks for every container every 10 s, as ImageFsInfo does,
   * and both share the walks); a snapshot never walked is walked now.
   */
  async usage(key: string): Promise<SnapshotUsage> {
    const row = this.meta.mustGet(key);
    if (row.kind === 'committed' && row.size !== null && row.inodes !== null) return { size: row.size, inodes: row.inodes };
    const w = this.walked.get(row.id);
    if (!w) return this.walk(row);
    // A stale walk still answers; the background pass walks it (and every other stale tree)
    // again. Walking here made each 10 s ListContainerStats walk every container's tree inline
    // while ImageFsInfo, asked at the same moment, started the same walks in the background.
    if (Date.now() - w.at > this.usageMaxAgeMs) this.refreshStale();
    return w.usage;
  }

  /**
   * What the store uses: committed snapshots by the size and inodes measured at their commit
   * (they never change), active and view snapshots by walks of their trees (containers write
   * there). kubelet asks every 10 s (ImageFsInfo), and walking every container's tree on each
   * call made the reply wait seconds, so, as containerd's CRI does with its periodic snapshot
   * sync, the walks are cached: a snapshot never walked is walked before the reply (a new
   * container's tree is nearly empty), one walked more than usageMaxAgeMs ago counts with its
   * last walk while one background pass walks every stale tree again. Snapshots removed since
   * drop out at once (the walks are keyed by snapshot id, and only ids with a record count).
   * So the figure is never older than usageMaxAgeMs plus one pass for a caller asking regularly.
   */
  async totalUsage(): Promise<SnapshotUsage> {
    const now = Date.now();
    let size = 0;
    let inodes = 0;
    const live = new Set<number>();
    const stale: SnapshotRow[] = [];
    for (const row of this.meta.all()) {
      let u: SnapshotUsage;
      if (row.kind === 'committed' && row.size !== null && row.inodes !== null) {
        u = { size: row.size, inodes: row.inodes };
      } else {
        live.add(row.id);
        const w = this.walked.get(row.id);
        if (w) {
          u = w.usage;
          if (now - w.at > this.usageMaxAgeMs) stale.push(row);
        } else {
          u = await this.walk(row);
        }
      }
      size += u.size;
      inodes += u.inodes;
    }
    for (const id of this.walked.keys()) if (!live.has(id)) this.walked.delete(id);
    if (stale.length > 0) this.refreshStale(stale);
    return { size, inodes };
  }

  /** Starts the background pass over the stale walks (all of them unless given), unless one runs. */
  private refreshStale(given?: SnapshotRow[]): void {
    if (this.refreshing) return;
    const now = Date.now();
    const stale =
      given ??
      this.meta.all().filter((row) => {
        const w = row.kind === 'committed' && row.size !== null && row.inodes !== null ? undefined : this.walked.get(row.id);
        return w !== undefined && now - w.at > this.usageMaxAgeMs;
      });
    this.refreshing = (async () => {
      for (const row of stale) {
        // A container's tree is a few dozen syscalls, under the walk's own slice: without a
        // turn here the whole pass (100 trees: ~15-35 ms) ran in one go, and the calls that
        // came with it (kubelet sends ImageFsInfo with the two stats calls) waited behind it.
        await turn();
        if (!this.store) return; // closed meanwhile
        if (this.meta.get(row.key)?.id === row.id) await this.walk(row);
      }
    })()
      .catch((err: unknown) => log.warn('snapshots: usage refresh failed', { error: err }))
      .finally(() => (this.refreshing = undefined));
  }

  /** Walks one snapshot's tree and keeps the result for totalUsage. */
  private async walk(row: SnapshotRow): Promise<SnapshotUsage> {
    const usage = await diskUsage(this.snapDir(row.id));
    this.walked.set(row.id, { usage, at: Date.now() });
    return usage;
  }

  /** Resolves once no background usage walk runs (tests, close). */
  async usageSettled(): Promise<void> {
    await this.refreshing;
  }
}
