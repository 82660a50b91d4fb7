/**
 * Idmapped bind mounts for containers of a pod with a user namespace (kubelet sets
 * Mount.uid_mappings/gid_mappings on every volume of a hostUsers=false pod, equal to the pod's
 * mappings). runc 1.1 cannot make them, so berthd does, for the span of CreateContainer:
 *
 *   1. open_tree(host path, OPEN_TREE_CLONE | AT_RECURSIVE): a detached copy of the host mount;
 *   2. mount_setattr(MOUNT_ATTR_IDMAP, the pod's pinned user namespace, private propagation);
 *   3. move_mount onto a staging entry under `<state>/idmap/` (a private mount of its own, so
 *      nothing propagates to other mount namespaces);
 *   4. the spec binds the staging entry (a bind of an idmapped mount keeps its idmapping) and
 *      runc copies it into the container's mount namespace at create;
 *   5. right after the task is created the staging mounts are detached again (`release`).
 *
 * Nothing stays mounted on the host once CreateContainer returns; a berthd that dies in
 * between leaves staging mounts that `sweepIdmapStaging` detaches at the next start. The
 * staging entries are only ever unmounted and then removed with rmdir/unlink, never walked.
 */
import { closeSync, lstatSync, mkdirSync, openSync, readFileSync, readdirSync, rmdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { IDMapping, Mount as CriMount, NamespaceOption } from '../../api/cri/runtime/v1/api_pb.js';
import { NamespaceMode } from '../../api/cri/runtime/v1/api_pb.js';
import { mountAll, unmount } from '../../mount.js';
import { errors } from '../../errors.js';
import { libc, type Koffi } from '../../libc.js';

const OPEN_TREE_CLONE = 0x1;
const O_CLOEXEC = 0o2000000;
const AT_RECURSIVE = 0x8000;
const AT_EMPTY_PATH = 0x1000;
const AT_SYMLINK_NOFOLLOW = 0x100;
const AT_FDCWD = -100;
const MOUNT_ATTR_IDMAP = 0x00100000;
const MS_PRIVATE = 1 << 18;
const MOVE_MOUNT_F_EMPTY_PATH = 0x4;

interface Fns {
  koffi: Koffi;
  openTree(dfd: number, path: string, flags: number): number;
  mountSetattr(dfd: number, path: string, flags: number, attr: Buffer, size: number): number;
  moveMount(fromDfd: number, fromPath: string, toDfd: number, toPath: string, flags: number): number;
}
// Process-wide: the libc functions, bound once (koffi handles belong to the process).
let fns: Fns | undefined;

function sys(): Fns {
  if (fns) return fns;
  const { koffi, lib } = libc();
  // glibc ≥ 2.36 (Debian 12) has the wrappers of the new mount API.
  fns = {
    koffi,
    openTree: lib.func('int open_tree(int dfd, const char *path, unsigned int flags)') as Fns['openTree'],
    mountSetattr: lib.func('int mount_setattr(int dfd, const char *path, unsigned int flags, void *attr, size_t size)') as Fns['mountSetattr'],
    moveMount: lib.func('int move_mount(int from_dfd, const char *from_path, int to_dfd, const char *to_path, unsigned int flags)') as Fns['moveMount'],
  };
  return fns;
}

function fail(what: string, path: string): never {
  const l = sys();
  const code = l.koffi.errno();
  throw errors.internal(
    'container.idmap_mount',
    `${what} ${path}: errno ${code}${code === 22 ? ' (EINVAL: the filesystem may not support idmapped mounts)' : ''}`,
  );
}

/**
 * `<state>/idmap`, bind-mounted onto itself with private propagation (once). `known` holds
 * the roots found or made mounted before (a context's ctx.idmapRoots: every userns container
 * asks); without it mountinfo is read every time.
 */
export function idmapRoot(state: string, known?: Set<string>): string {
  const root = join(state, 'idmap');
  if (known?.has(root)) return root;
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const mounted = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === root);
  if (!mounted) {
    try {
      mountAll([{ type: 'bind', source: root, options: ['bind', 'private'] }], root);
    } catch (err) {
      throw errors.internal('container.idmap_mount', `bind-mount ${root} onto itself, private: ${(err as Error).message}`, err);
    }
  }
  known?.add(root);
  return root;
}

/** An idmapped copy of `source` (recursive), using the user namespace at `usernsPath`, at `target`. */
export function idmapBind(source: string, target: string, usernsPath: string): void {
  const l = sys();
  const userns = openSync(usernsPath, 'r');
  let tree = -1;
  try {
    // The host path was resolved once by the caller: what was resolved is what gets mounted.
    tree = l.openTree(AT_FDCWD, source, OPEN_TREE_CLONE | O_CLOEXEC | AT_RECURSIVE | AT_SYMLINK_NOFOLLOW);
    if (tree < 0) fail('open_tree', source);
    const attr = Buffer.alloc(32);
    attr.writeBigUInt64LE(BigInt(MOUNT_ATTR_IDMAP), 0);
    attr.writeBigUInt64LE(BigInt(MS_PRIVATE), 16);
    attr.writeBigUInt64LE(BigInt(userns), 24);
    if (l.mountSetattr(tree, '', AT_EMPTY_PATH | AT_RECURSIVE, attr, attr.length) !== 0) fail('mount_setattr(MOUNT_ATTR_IDMAP)', source);
    if (l.moveMount(tree, '', AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) !== 0) fail('move_mount', target);
  } finally {
    if (tree >= 0) closeSync(tree);
    closeSync(userns);
  }
}

function sameMappings(a: readonly IDMapping[], b: readonly IDMapping[]): boolean {
  return a.length === b.length && a.every((m, i) => m.hostId === b[i]!.hostId && m.containerId === b[i]!.containerId && m.length === b[i]!.length);
}

/** Detaches and removes staging entries (idempotent; never recursive). */
export function removeStaging(paths: readonly string[]): void {
  for (const p of paths) {
    unmount(p, { detach: true, all: true });
    try {
      if (lstatSync(p).isDirectory()) rmdirSync(p);
      else unlinkSync(p);
    } catch {
      /* already gone */
    }
  }
}

export interface IdmapPlan {
  /** The mounts with idmapped ones pointing at their staging entry, mappings cleared. */
  mounts: CriMount[];
  /** Detach the staging mounts (after the task is created, or on failure). */
  release(): void;
}

/**
 * Makes the idmapped mounts a container asks for. `mounts` are the resolved CRI mounts;
 * `podUserns` the pod's namespace options; `usernsPath` the pod's pinned user namespace.
 */
export function prepareIdmapMounts(o: {
  state: string;
  containerId: string;
  mounts: readonly CriMount[];
  podNamespaces: NamespaceOption | undefined;
  usernsPath: string | undefined;
  /** The context's ctx.idmapRoots (see idmapRoot). */
  idmapRoots?: Set<string>;
}): IdmapPlan {
  const wanted = o.mounts.map((m, i) => ({ m, i })).filter(({ m }) => m.uidMappings.length > 0 || m.gidMappings.length > 0);
  if (wanted.length === 0) return { mounts: [...o.mounts], release: () => undefined };
  const u = o.podNamespaces?.usernsOptions;
  const staged: string[] = [];
  const out = [...o.mounts];
  try {
    for (const { m, i } of wanted) {
      const field = `config.mounts[${i}]`;
      if (!u || u.mode !== NamespaceMode.POD || !o.usernsPath)
        throw errors.invalidArgument(
          'container.idmap_without_userns',
          `${field}.uid_mappings: idmapped mounts need a pod with a user namespace (userns_options mode POD)`,
        );
      if (!sameMappings(m.uidMappings, u.uids) || !sameMappings(m.gidMappings, u.gids)) {
        throw errors.invalidArgument(
          'container.idmap_mappings',
          `${field}.uid_mappings/gid_mappings: must equal the pod's user namespace mappings (berth idmaps with the pod's user namespace)`,
        );
      }
      const root = idmapRoot(o.state, o.idmapRoots);
      const target = join(root, `${o.containerId}-${i}`);
      if (statSync(m.hostPath).isDirectory()) mkdirSync(target, { mode: 0o700 });
      else writeFileSync(target, '', { mode: 0o600, flag: 'wx' });
      staged.push(target);
      idmapBind(m.hostPath, target, o.usernsPath);
      out[i] = { ...m, hostPath: target, uidMappings: [], gidMappings: [] };
    }
  } catch (err) {
    removeStaging(staged);
    throw err;
  }
  return { mounts: out, release: () => removeStaging(staged) };
}

/** At start: no CreateContainer is running, so every staging entry is a leftover. */
export function sweepIdmapStaging(state: string): number {
  const root = join(state, 'idmap');
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return 0;
  }
  removeStaging(names.map((n) => join(root, n)));
  return names.length;
}
