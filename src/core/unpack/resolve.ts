/**
 * Resolution of archive paths to real directories inside an extraction root, never leaving it.
 *
 * Every parent component is looked up with lstat, component by component; a symlink found on
 * the way is followed *as if the root were "/"*: absolute targets restart at the root and ".."
 * stops at the root, so a link planted by an earlier entry or layer (`x -> /etc`, `x -> ..`)
 * can never redirect a write to the host. Results are cached per directory so each entry costs
 * O(1) syscalls amortized and O(path length) work (linear time in the layer size). When an
 * entry removes or replaces a directory or symlink, only what depended on it is dropped: the
 * removed directory's subtree of the cache, and the resolutions that followed a symlink (they
 * are recomputed from the cached real directories, without a syscall per component). Entry
 * names are capped at PATH_MAX by the caller, which bounds the kernel's own per-path work.
 *
 * In overlay mode the root is an empty upper dir over read-only lower layers (newest first).
 * A parent missing in the upper dir is looked up in the lowers (honouring whiteouts and opaque
 * dirs); a lower directory is re-created in the upper dir with the same owner and mode, and a
 * lower symlink is followed with the same root-confined rules.
 *
 * The lowers may be unknown when extraction starts (a layer unpacked while its parent is still
 * being unpacked): they are then fetched through `pendingLowers` the first time a lookup really
 * needs them. Which lower layers merge into a directory is computed lazily for the same reason;
 * computing it later gives the same answer as computing it at first resolution, because it only
 * depends on the (read-only) lowers and on the upper dir's opaque flag, which markOpaque and
 * the lazy computation both honour.
 */
import { lstat, mkdir, readlink, chmod, lchown, rm, unlink } from './fsops.js';
import type { Stats } from 'node:fs';
import { join } from 'node:path';
import { errors } from '../../errors.js';
import { lgetxattr, lsetxattr } from './sys.js';

/** Max symlinks followed while resolving one path (same bound as the kernel's ELOOP). */
const MAX_LINK_HOPS = 40;

export const OPAQUE_XATTR = 'trusted.overlay.opaque';

/**
 * Splits an archive path into clean components relative to the root: empty and "." parts are
 * dropped, ".." pops (never above the root), a leading "/" is ignored.
 */
export function cleanComponents(path: string, base: readonly string[] = []): string[] {
  if (path.includes('\0')) throw errors.invalidArgument('unpack.invalid_path', `path contains NUL: ${JSON.stringify(path)}`);
  const out = [...base];
  if (path.startsWith('/')) out.length = 0;
  for (const part of path.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop();
    else out.push(part);
  }
  return out;
}

export function joinRel(parent: string, name: string): string {
  return parent === '' ? name : `${parent}/${name}`;
}

function isWhiteoutDevice(st: Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

async function lstatOrNull(path: string): Promise<Stats | null> {
  try {
    // throwIfNoEntry: a missing entry is the common case; building an exception costs more
    // than the syscall.
    return (await lstat(path, { throwIfNoEntry: false })) ?? null;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw err;
  }
}

function isOpaque(path: string): boolean {
  const v = lgetxattr(path, OPAQUE_XATTR);
  return v !== null && v.toString() === 'y';
}

type LowerHit = { kind: 'dir'; st: Stats; layers: number[] } | { kind: 'symlink'; target: string } | { kind: 'other' };

/** A resolved real directory; `children` maps a lexical child name to where it resolves. */
interface DirNode {
  real: string;
  /** The real parent directory (null for the root). */
  parent: DirNode | null;
  /** Base name of `real` in `parent`. */
  name: string;
  /** Lexical child name → the real directory it is (no symlink on the way). */
  children: Map<string, DirNode>;
  /** Lexical child name → where it led through a symlink, valid while `linkEpoch` is current. */
  linked: Map<string, { node: DirNode; epoch: number }>;
  /** Real subdirectories known below this one (to drop a removed subtree). */
  subdirs: Map<string, DirNode>;
  /** Set once this directory was removed or replaced; its node must not be used again. */
  dead?: boolean;
  /**
   * Indices of the lower layers whose directory at `real` merges into it (overlay mode);
   * undefined until a lookup below this directory needs it.
   */
  layers?: number[];
}

function newNode(real: string, parent: DirNode | null, name: string, layers?: number[]): DirNode {
  return { real, parent, name, children: new Map(), linked: new Map(), subdirs: new Map(), layers };
}

/** Supplies the lower layer dirs (newest first) once they exist. */
export type PendingLowers = () => Promise<readonly string[]>;

export class RootResolver {
  /**
   * Resolved directories as a trie: a lookup walks one map entry per component, so resolving a
   * path costs O(path length) once its directories are known (no per-entry prefix re-hashing).
   */
  private top!: DirNode;
  /** real path → node, so symlinks to an already-known directory share its node. */
  private nodes = new Map<string, DirNode>();
  /** Number of lstat calls made in the upper dir (exposed to check the linear-time bound). */
  lstatCalls = 0;
  /** Bumped whenever a directory or symlink is removed: resolutions through symlinks expire. */
  private linkEpoch = 0;

  private lowers: readonly string[] | null;

  /**
   * `lowers`: the lower layer dirs, newest first. With `pendingLowers` instead, they are asked
   * for only when a lookup needs them (which may wait until the parent layer is committed).
   */
  constructor(
    readonly root: string,
    lowers: readonly string[] = [],
    private readonly pendingLowers?: PendingLowers,
  ) {
    this.lowers = pendingLowers ? null : lowers;
    this.invalidate();
  }

  /** Forget every cached resolution. */
  invalidate(): void {
    this.top = newNode('', null, '');
    this.nodes = new Map([['', this.top]]);
    this.linkEpoch++;
  }

  /**
   * The entry at real path `real` (a directory or a symlink) was removed or replaced: drops the
   * cached subtree below it and every resolution that went through a symlink; the rest of the
   * cache stays (a layer replacing a symlink 1e5 times must not re-resolve everything each time).
   */
  removed(real: string): void {
    this.linkEpoch++;
    const node = this.nodes.get(real);
    if (node && node !== this.top) {
      node.parent?.subdirs.delete(node.name);
      const stack = [node];
      while (stack.length > 0) {
        const n = stack.pop()!;
        n.dead = true;
        this.nodes.delete(n.real);
        for (const c of n.subdirs.values()) stack.push(c);
      }
    }
    const slash = real.lastIndexOf('/');
    this.forget(slash < 0 ? '' : real.slice(0, slash), slash < 0 ? real : real.slice(slash + 1));
  }

  private async getLowers(): Promise<readonly string[]> {
    if (this.lowers === null) this.lowers = [...(await this.pendingLowers!())];
    return this.lowers;
  }

  /** The lower layers merging into `node` (computed on first need, see the module comment). */
  private async layersOf(node: DirNode): Promise<number[]> {
    if (node.layers !== undefined) return node.layers;
    const lowers = await this.getLowers();
    let layers: number[];
    if (node.parent === null) layers = lowers.map((_, i) => i);
    else if (lowers.length === 0 || isOpaque(join(this.root, node.real))) layers = [];
    else {
      const hit = await this.lookupLower(node.parent, node.name);
      layers = hit?.kind === 'dir' ? hit.layers : [];
    }
    // A concurrent computation may have finished first (or markOpaque run): keep the first.
    node.layers ??= layers;
    return node.layers;
  }

  /**
   * Drops the cached resolution of parent/name: an entry is being written there, which may now
   * shadow what it resolved to before (e.g. a new upper dir over a lower-layer symlink).
   */
  forget(parent: string, name: string): void {
    const n = this.nodes.get(parent);
    n?.children.delete(name);
    n?.linked.delete(name);
  }

  /** Marks a real dir as opaque: no lower layer merges into it any more. */
  markOpaque(real: string): void {
    const n = this.nodes.get(real);
    if (n) n.layers = [];
  }

  /** Whether this resolver ever had to wait for pending lowers (exposed for tests). */
  get lowersFetched(): boolean {
    return this.pendingLowers !== undefined && this.lowers !== null;
  }

  /**
   * Resolves the directory named by `comps` to a real path relative to the root. With
   * `create`, missing directories are created (in the upper dir); without, null is returned
   * when something is missing (used for hard link targets, which must already exist).
   */
  async resolveDir(comps: readonly string[], create: boolean): Promise<string | null> {
    const n = await this.walk(comps, create, { n: 0 });
    return n === null ? null : n.real;
  }

  private async walk(comps: readonly string[], create: boolean, hops: { n: number }): Promise<DirNode | null> {
    let node = this.top;
    for (const name of comps) {
      let next = node.children.get(name);
      if (next?.dead) {
        node.children.delete(name);
        next = undefined;
      }
      if (next === undefined) {
        const l = node.linked.get(name);
        if (l && l.epoch === this.linkEpoch && !l.node.dead) next = l.node;
      }
      if (next === undefined) {
        const epoch = this.linkEpoch;
        const before = hops.n;
        const stepped = await this.step(node, name, create, hops);
        if (stepped === null) return null;
        next = stepped;
        // A direct step names a real directory; one that followed a symlink is only valid
        // until a directory or symlink is next removed.
        if (hops.n === before && next.real === joinRel(node.real, name)) node.children.set(name, next);
        else if (epoch === this.linkEpoch) node.linked.set(name, { node: next, epoch });
      }
      node = next;
    }
    return node;
  }

  private known(parent: DirNode, name: string, layers?: number[]): DirNode {
    const real = joinRel(parent.real, name);
    let n = this.nodes.get(real);
    if (!n) {
      n = newNode(real, parent, name, layers);
      this.nodes.set(real, n);
      parent.subdirs.set(name, n);
    }
    return n;
  }

  /** Resolves one component below an already resolved directory. */
  private async step(parentNode: DirNode, name: string, create: boolean, hops: { n: number }): Promise<DirNode | null> {
    const parent = parentNode.real;
    const real = joinRel(parent, name);
    const abs = join(this.root, real);

    this.lstatCalls++;
    const st = await lstatOrNull(abs);
    if (st?.isDirectory()) return this.known(parentNode, name);
    if (st?.isSymbolicLink()) return this.follow(parent, await readlink(abs), create, hops);
    if (st && isWhiteoutDevice(st) && (await this.getLowers()).length > 0) {
      // Deleted earlier in this layer, now needed as a directory again: an opaque new dir.
      if (!create) return null;
      await unlink(abs);
      await mkdir(abs, { mode: 0o755 });
      lsetxattr(abs, OPAQUE_XATTR, Buffer.from('y'));
      return this.known(parentNode, name, []);
    }
    if (st) {
      throw errors.invalidArgument('unpack.not_a_directory', `layer path "${real}" is used as a directory but is not one`);
    }
    const hit = await this.lookupLower(parentNode, name);
    if (hit?.kind === 'symlink') return this.follow(parent, hit.target, create, hops);
    if (hit?.kind === 'other') {
      throw errors.invalidArgument('unpack.not_a_directory', `layer path "${real}" is used as a directory but is not one`);
    }
    if (!create) return null;
    await mkdir(abs, { mode: 0o755 });
    if (hit?.kind === 'dir') {
      // Keep the lower directory's owner and mode visible in the merged view.
      await lchown(abs, hit.st.uid, hit.st.gid);
      await chmod(abs, hit.st.mode & 0o7777);
    }
    return this.known(parentNode, name, hit?.kind === 'dir' ? hit.layers : []);
  }

  private async follow(parent: string, target: string, create: boolean, hops: { n: number }): Promise<DirNode | null> {
    if (++hops.n > MAX_LINK_HOPS) {
      throw errors.invalidArgument('unpack.too_many_links', `too many levels of symbolic links resolving "${target}"`);
    }
    const base = parent === '' ? [] : parent.split('/');
    return this.walk(cleanComponents(target, base), create, hops);
  }

  /**
   * The topmost lower entry at parent/name in the merged view of the lower layers, or null when
   * absent or whited out. Only layers where `parent` is a real directory are consulted, so an
   * lstat here never traverses a symlink inside a lower layer.
   */
  private async lookupLower(parentNode: DirNode, name: string): Promise<LowerHit | null> {
    const layers = await this.layersOf(parentNode);
    if (layers.length === 0) return null;
    const lowers = this.lowers!;
    const parent = parentNode.real;
    for (let k = 0; k < layers.length; k++) {
      const idx = layers[k]!;
      const p = join(lowers[idx]!, parent, name);
      const st = await lstatOrNull(p);
      if (!st) continue;
      if (isWhiteoutDevice(st)) return null;
      if (st.isSymbolicLink()) return { kind: 'symlink', target: await readlink(p) };
      if (!st.isDirectory()) return { kind: 'other' };
      const merged = [idx];
      if (!isOpaque(p)) {
        for (const j of layers.slice(k + 1)) {
          const q = join(lowers[j]!, parent, name);
          const sq = await lstatOrNull(q);
          if (!sq) continue;
          if (!sq.isDirectory()) break;
          merged.push(j);
          if (isOpaque(q)) break;
        }
      }
      return { kind: 'dir', st, layers: merged };
    }
    return null;
  }
}

/** rm -rf of one path inside the root without following a final symlink. */
export async function removeAll(abs: string): Promise<void> {
  await rm(abs, { recursive: true, force: true });
}
