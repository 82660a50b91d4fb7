/**
 * overlayfs snapshotter: each snapshot dir holds one layer; a committed chain is mounted as
 * an overlay whose lowerdir list is the chain, newest first.
 *
 * Mount data limit: the kernel accepts one page (4096 bytes) of options. Each lower costs
 * `<root>/snapshots/<id>/fs:` ≈ root length + 18 bytes, so with a 40-byte root about 70
 * layers fit; longer chains fail with mount.options_too_long rather than a cryptic EINVAL.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rename, rm, rmdir, writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DirSnapshotter } from './base.js';
import type { SnapshotRow } from './metastore.js';
import { mountAll, parseMountOptions, unmount } from '../../mount.js';
import type { ApplyTarget, Mount } from './types.js';

export class OverlaySnapshotter extends DirSnapshotter {
  readonly driver = 'overlayfs' as const;

  protected override async createDirs(row: SnapshotRow): Promise<void> {
    await mkdir(this.fsDir(row.id), { recursive: true, mode: 0o755 });
    if (row.kind === 'active') await mkdir(this.workDir(row.id), { mode: 0o711 });
  }

  protected override mountsOf(row: SnapshotRow, parents: SnapshotRow[]): Mount[] {
    const lowers = parents.map((p) => this.fsDir(p.id));
    let m: Mount;
    if (row.kind === 'active') {
      m =
        lowers.length === 0
          ? { type: 'bind', source: this.fsDir(row.id), options: ['rw', 'rbind'] }
          : {
              type: 'overlay',
              source: 'overlay',
              options: [`workdir=${this.workDir(row.id)}`, `upperdir=${this.fsDir(row.id)}`, `lowerdir=${lowers.join(':')}`],
            };
    } else if (lowers.length <= 1) {
      m = { type: 'bind', source: lowers[0] ?? this.fsDir(row.id), options: ['ro', 'rbind'] };
    } else {
      // Without an upperdir an overlay is read-only by itself.
      m = { type: 'overlay', source: 'overlay', options: [`lowerdir=${lowers.join(':')}`] };
    }
    parseMountOptions(m.options); // fail early when the data string exceeds the page limit
    return [m];
  }

  protected override applyTargetOf(row: SnapshotRow, parents: SnapshotRow[]): ApplyTarget {
    return { dir: this.fsDir(row.id), mode: 'overlay', lowers: parents.map((p) => this.fsDir(p.id)) };
  }

  /** Under snapshots/ (same filesystem: adopting is a rename); init() removes leftovers. */
  async createStaging(): Promise<string> {
    const dir = join(this.root, 'snapshots', `staging-${randomBytes(6).toString('hex')}`);
    // Same mode as a snapshot's own fs dir: it becomes one.
    await mkdir(dir, { mode: 0o755 });
    return dir;
  }

  async adoptStaging(key: string, dir: string): Promise<void> {
    const target = await this.applyTarget(key);
    await rmdir(target.dir); // still empty: nothing was applied to it
    await rename(dir, target.dir);
  }
}

/**
 * Checks that overlay mounts work with upper dirs under `dir` (kernel support, and a backing
 * filesystem overlay accepts as upper). Returns null when usable, else the reason.
 */
export async function checkOverlaySupport(dir: string): Promise<string | null> {
  await mkdir(dir, { recursive: true });
  const tmp = await mkdtemp(join(dir, 'overlay-check-'));
  const merged = join(tmp, 'merged');
  let mounted = false;
  try {
    for (const d of ['l1', 'l2', 'upper', 'work', 'merged']) await mkdir(join(tmp, d));
    await writeFile(join(tmp, 'l1', 'f'), 'lower');
    mountAll(
      [
        {
          type: 'overlay',
          source: 'overlay',
          options: [`lowerdir=${join(tmp, 'l2')}:${join(tmp, 'l1')}`, `upperdir=${join(tmp, 'upper')}`, `workdir=${join(tmp, 'work')}`],
        },
      ],
      merged,
    );
    mounted = true;
    if ((await readFile(join(merged, 'f'), 'utf8')) !== 'lower') return 'overlay mount does not show lower content';
    await writeFile(join(merged, 'g'), 'upper');
    return null;
  } catch (err) {
    return `overlay mount failed: ${(err as Error).message}`;
  } finally {
    if (mounted) unmount(merged, { detach: true });
    await rm(tmp, { recursive: true, force: true });
  }
}
