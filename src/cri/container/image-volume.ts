/**
 * Image volumes (Kubernetes ImageVolume, KEP-4639: `Mount.image`, `Mount.image_sub_path`).
 * kubelet pulls the image first and then sends a mount with `image` set (the image id it got
 * back), no host path and readonly=true. berth turns it into a plain read-only bind:
 *
 *   - one read-only view per (sandbox, image): a `view` snapshot on the image's top chain id
 *     (key `imgvol-<sandbox>-<image hex>`; a bind of the one layer, or an overlay of the
 *     layers with no upper dir) mounted ro,nosuid,nodev,noexec on
 *     `<state>/imgvol/<sandbox>/<image hex>`. `<state>/imgvol` is a private mount of its own,
 *     so nothing mounted there propagates to other mount namespaces. Every container of the pod
 *     that mounts the image binds that one view (as containerd does).
 *   - `image_sub_path` is resolved inside the view with openat2(RESOLVE_BENEATH |
 *     RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV): a `..` component is refused outright, and a
 *     symlink in the image that leads out of it (absolute, or climbing above the root) fails
 *     with EXDEV instead of being followed. Only directories can be mounted.
 *   - The view snapshot is a child of the image's layers, so garbage collection keeps them while
 *     the view exists. RemoveImage of an image a container uses as a volume is refused
 *     (FailedPrecondition naming the containers, as CRI-O does; containerd removes the names and
 *     keeps the content): kubelet's image GC counts such images as in use through
 *     ContainerStatus.mounts[].image, so only a person's `rmi` gets here, and the refusal tells
 *     them why. Should a RemoveImage race a create that is about to mount the image, the view
 *     still holds the layers and keeps working.
 *   - In a pod with its own user namespace the view is an overlay over idmapped clones of the
 *     layers (the pod's pinned user namespace), so files keep their ids inside; where the
 *     kernel refuses, the plain view is used (logged) and its files show as the overflow ids.
 *   - Who uses a view is read from the container records (`extra.imageVolumes`), plus the
 *     creates in flight in this process; nothing else is counted. A view is removed when the
 *     last container using it is removed, with its pod, and by the sweep after recovery (views
 *     no record names). A view whose mount vanished (a reboot) is mounted again from its
 *     snapshot by the next create that needs it.
 */
import { createHash } from 'node:crypto';
import { closeSync, constants as fsc, mkdirSync, openSync, readFileSync, readdirSync, readlinkSync, rmdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { clone } from '@bufbuild/protobuf';
import { MountSchema, type Mount as CriMount } from '../../api/cri/runtime/v1/api_pb.js';
import type { ContainerRecord } from '../../core/metadata/records.js';
import type { Image } from '../../core/images/service.js';
import { mountAll, unmount } from '../../mount.js';
import type { Mount, Snapshotter } from '../../core/snapshots/types.js';
import { SnapshotLabel } from '../../core/snapshots/labels.js';
import { errors, isBerthError } from '../../errors.js';
import type { KeyedLock } from '../../keyed-lock.js';
import { libc, type Koffi } from '../../libc.js';
import type { Logger } from '../../log.js';
import { idmapBind, idmapRoot, removeStaging } from './idmap.js';

/** Flags of every view and of every bind of one into a container. */
export const IMAGE_VOLUME_OPTIONS = ['nosuid', 'nodev', 'noexec'] as const;
const VIEW_PREFIX = 'imgvol-';
const VIEW_KEY = /^imgvol-([0-9a-f]{1,128})-([0-9a-f]{64})$/;

/** Snapshot key of the view of image `imageId` (sha256:<hex>) for pod `sandboxId`. */
export function viewKey(sandboxId: string, imageId: string): string {
  return `${VIEW_PREFIX}${sandboxId}-${imageId.replace(/^sha256:/, '')}`;
}

export function parseViewKey(key: string): { sandboxId: string; imageId: string } | undefined {
  const m = VIEW_KEY.exec(key);
  return m ? { sandboxId: m[1]!, imageId: `sha256:${m[2]!}` } : undefined;
}

export function viewsRoot(state: string): string {
  return join(state, 'imgvol');
}

export function viewPath(state: string, key: string): string {
  const p = parseViewKey(key);
  if (!p) throw errors.internal('container.image_volume_key', `not an image volume key: ${key}`);
  return join(viewsRoot(state), p.sandboxId, p.imageId.slice('sha256:'.length));
}

/** The view keys a container record holds. */
export function imageVolumesOf(rec: Pick<ContainerRecord, 'extra'>): string[] {
  const v = rec.extra['imageVolumes'];
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

/** Every view some record names. */
export function usedViews(recs: Iterable<Pick<ContainerRecord, 'extra'>>): Set<string> {
  const out = new Set<string>();
  for (const r of recs) for (const k of imageVolumesOf(r)) out.add(k);
  return out;
}

export interface ImageMountRequest {
  /** Index in config.mounts. */
  index: number;
  field: string;
  image: string;
  /** Relative, normalized ('' = the image's root). */
  subPath: string;
}

/**
 * Checks a CRI mount with `image` set (pure): no host path, readonly, a sub path without `..`
 * components or NUL. A leading `/` of the sub path is taken as the image's root.
 */
export function checkImageMount(m: CriMount, index: number): ImageMountRequest {
  const field = `config.mounts[${index}]`;
  const image = m.image?.image ?? '';
  if (image === '') throw errors.invalidArgument('container.image_volume', `${field}.image.image: an image reference or id is required`);
  if (m.hostPath !== '')
    throw errors.invalidArgument('container.image_volume', `${field}.host_path must be empty when image is set (got ${JSON.stringify(m.hostPath)})`);
  if (!m.readonly) throw errors.invalidArgument('container.image_volume', `${field}.readonly must be true: image volumes are read-only`);
  if (m.recursiveReadOnly)
    throw errors.invalidArgument('container.image_volume', `${field}.recursive_read_only: an image volume has no submounts to make read-only`);
  return { index, field, image, subPath: normalizeSubPath(m.imageSubPath, `${field}.image_sub_path`) };
}

export function normalizeSubPath(sub: string, field: string): string {
  if (sub.includes('\0')) throw errors.invalidArgument('container.image_volume_sub_path', `${field}: contains a NUL byte`);
  const parts = sub.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw errors.invalidArgument('container.image_volume_sub_path', `${field} ${JSON.stringify(sub)}: ".." is not allowed`);
  return parts.join('/');
}

// openat2(2): no glibc wrapper, so the raw syscall (x86_64 and aarch64 share number 437).
const SYS_OPENAT2 = 437;
const O_PATH = 0o10000000;
const O_CLOEXEC = 0o2000000;
const RESOLVE_NO_XDEV = 0x01;
const RESOLVE_NO_MAGICLINKS = 0x02;
const RESOLVE_BENEATH = 0x08;
const ENOENT = 2;
const ENOTDIR = 20;
const EXDEV = 18;
const ELOOP = 40;

interface Fns {
  koffi: Koffi;
  syscall: (nr: number, ...args: unknown[]) => number;
}
// Process-wide: the libc functions, bound once (koffi handles belong to the process).
let fns: Fns | undefined;
function sys(): Fns {
  if (fns) return fns;
  const { koffi, lib } = libc();
  fns = { koffi, syscall: lib.func('long syscall(long nr, ...)') as Fns['syscall'] };
  return fns;
}

/**
 * The host path of directory `subPath` inside `root`, resolved beneath it (never through a
 * symlink leading out, never across a mount). `what` names the request in errors.
 */
export function resolveBeneath(root: string, subPath: string, field: string, what: string): string {
  if (subPath === '') return root;
  const l = sys();
  const rootFd = openSync(root, fsc.O_RDONLY | fsc.O_DIRECTORY | O_CLOEXEC);
  try {
    const how = Buffer.alloc(24); // struct open_how { u64 flags; u64 mode; u64 resolve; }
    how.writeBigUInt64LE(BigInt(O_PATH | fsc.O_DIRECTORY | O_CLOEXEC), 0);
    how.writeBigUInt64LE(BigInt(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV), 16);
    const fd = Number(l.syscall(SYS_OPENAT2, 'int', rootFd, 'str', subPath, 'void *', how, 'size_t', how.length));
    if (fd < 0) {
      const e = l.koffi.errno();
      const shown = `${field} ${JSON.stringify(subPath)}`;
      if (e === ENOENT) throw errors.notFound('container.image_volume_sub_path_not_found', `${shown} does not exist in ${what}`);
      if (e === ENOTDIR)
        throw errors.invalidArgument('container.image_volume_sub_path', `${shown} is not a directory in ${what} (only directories can be mounted)`);
      if (e === EXDEV || e === ELOOP) throw errors.invalidArgument('container.image_volume_sub_path', `${shown} leads out of ${what} (through a symlink)`);
      throw errors.internal('container.image_volume_sub_path_failed', `${shown}: openat2 in ${what} failed with errno ${e}`);
    }
    try {
      const p = readlinkSync(`/proc/self/fd/${fd}`);
      // The view is read-only and its content immutable: the path stays what was resolved.
      if (p !== root && !p.startsWith(`${root}/`))
        throw errors.internal('container.image_volume_sub_path_failed', `${field}: resolved outside the view (${p})`);
      return p;
    } finally {
      closeSync(fd);
    }
  } finally {
    closeSync(rootFd);
  }
}

function mountPoints(): Set<string> {
  return new Set(
    readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4])
      .filter((p): p is string => !!p)
      .map((p) => p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))),
  );
}

/** `<state>/imgvol`, bind-mounted onto itself with private propagation (once). */
function ensureViewsRoot(state: string): string {
  const root = viewsRoot(state);
  mkdirSync(root, { recursive: true, mode: 0o700 });
  if (!mountPoints().has(root)) mountAll([{ type: 'bind', source: root, options: ['bind', 'private'] }], root);
  return root;
}

export interface ImageVolumeDeps {
  images: { find(ns: string, spec: string): Promise<Image | undefined>; get(ns: string, id: string): Promise<Image | undefined>; gc(): Promise<void> };
  snapshotter: Snapshotter;
  containers: { bySandbox(ns: string, sandboxId: string): ContainerRecord[]; all(): Array<{ namespace: string; record: ContainerRecord }> };
  locks: KeyedLock;
  log: Logger;
  settings: { state: string };
  /** The creates in flight of this context, per view. */
  imageVolumes: ImageVolumeRefs;
  /** `<state>/idmap` roots known to be mounted (idmap.ts idmapRoot). */
  idmapRoots: Set<string>;
}

/**
 * Creates in flight per view path, of one RuntimeContext (ctx.imageVolumes): their views must
 * not be removed. With the container records this is the whole reference count of a view.
 */
export class ImageVolumeRefs {
  private readonly inFlight = new Map<string, number>();

  pin(p: string): void {
    this.inFlight.set(p, (this.inFlight.get(p) ?? 0) + 1);
  }

  unpin(p: string): void {
    const n = (this.inFlight.get(p) ?? 0) - 1;
    if (n > 0) this.inFlight.set(p, n);
    else this.inFlight.delete(p);
  }

  has(p: string): boolean {
    return this.inFlight.has(p);
  }

  /** The view paths with a create in flight. */
  paths(): IterableIterator<string> {
    return this.inFlight.keys();
  }
}

/**
 * Who uses image `imageId` (sha256:<hex>) as a volume: the ids of the containers whose records
 * name a view of it, and `creating` when a create that mounts it is in flight.
 */
export function imageVolumeUsers(
  imageId: string,
  recs: Iterable<Pick<ContainerRecord, 'id' | 'extra'>>,
  inFlight: Iterable<string>,
): { containers: string[]; creating: boolean } {
  const hex = imageId.replace(/^sha256:/, '');
  const containers: string[] = [];
  for (const r of recs) if (imageVolumesOf(r).some((k) => parseViewKey(k)?.imageId === `sha256:${hex}`)) containers.push(r.id);
  let creating = false;
  for (const p of inFlight) if (basename(p) === hex) creating = true;
  return { containers, creating };
}

const lockKey = (sandboxId: string): string => `imgvol:${sandboxId}`;

/**
 * The view of a pod with its own user namespace: a read-only overlay over idmapped clones of
 * the view's layer dirs (as the idmapped rootfs, container/userns.ts), so the image's files
 * show inside with their own ids. overlayfs wants two lowers without an upper dir: a single
 * layer gets an empty directory below it. The staging clones are detached once the overlay
 * holds them.
 */
function mountIdmappedView(state: string, roots: Set<string>, key: string, mounts: readonly Mount[], path: string, usernsPath: string): void {
  const m = mounts[0];
  let layers: string[];
  if (mounts.length === 1 && m?.type === 'overlay')
    layers = (m.options.find((o) => o.startsWith('lowerdir='))?.slice('lowerdir='.length) ?? '').split(':').filter((x) => x !== '');
  else if (mounts.length === 1 && m?.type === 'bind') layers = [m.source];
  else throw errors.internal('container.image_volume_mount', `the view is not one overlay or bind mount (${mounts.map((x) => x.type).join(', ') || 'none'})`);
  if (layers.length === 0) throw errors.internal('container.image_volume_mount', 'the view names no layer');
  const root = idmapRoot(state, roots);
  const tag = createHash('sha256').update(key).digest('hex').slice(0, 16);
  const staged: string[] = [];
  try {
    const lowers = layers.map((dir, i) => {
      const target = join(root, `v${tag}-${i}`);
      mkdirSync(target, { mode: 0o700 });
      staged.push(target);
      idmapBind(dir, target, usernsPath);
      return target;
    });
    if (lowers.length === 1) {
      const empty = join(viewsRoot(state), '.empty');
      mkdirSync(empty, { recursive: true, mode: 0o755 });
      lowers.push(empty);
    }
    mountAll([{ type: 'overlay', source: 'overlay', options: [`lowerdir=${lowers.join(':')}`, 'ro', ...IMAGE_VOLUME_OPTIONS] }], path);
  } finally {
    removeStaging(staged);
  }
}

/**
 * Mounts the view `key` of `image` unless it is mounted; returns its path. `usernsPath`: the
 * pod's pinned user namespace, when the view is to be idmapped with it.
 */
async function ensureView(d: ImageVolumeDeps, key: string, image: Image, usernsPath: string | undefined): Promise<string> {
  const path = viewPath(d.settings.state, key);
  if (mountPoints().has(path)) return path;
  ensureViewsRoot(d.settings.state);
  let mounts: Mount[];
  let created = false;
  try {
    mounts = await d.snapshotter.mounts(key);
  } catch (err) {
    if (!isBerthError(err, 'NotFound')) throw err;
    mounts = await d.snapshotter.view(key, image.topChainID || undefined, { [SnapshotLabel.imageVolume]: image.id });
    created = true;
  }
  try {
    mkdirSync(path, { recursive: true, mode: 0o755 });
    let idmapped = false;
    if (usernsPath) {
      try {
        mountIdmappedView(d.settings.state, d.idmapRoots, key, mounts, path, usernsPath);
        idmapped = true;
      } catch (err) {
        unmount(path, { detach: true, all: true });
        d.log.warn('image volume: idmapped layers refused, the view is not idmapped (its files show as the overflow ids)', {
          view: key,
          error: (err as Error).message,
        });
      }
    }
    // A view mount is read-only by itself (ro bind, or an overlay without an upper dir); the
    // flags make it so whatever the mount type, and keep setuid files and devices inert.
    if (!idmapped) {
      mountAll(
        mounts.map((m) => ({ ...m, options: [...m.options.filter((o) => o !== 'rw'), 'ro', ...IMAGE_VOLUME_OPTIONS] })),
        path,
      );
    }
  } catch (err) {
    unmount(path, { detach: true, all: true });
    if (created) await d.snapshotter.remove(key).catch(() => undefined);
    throw errors.internal('container.image_volume_mount', `mounting the view of image ${image.id}: ${(err as Error).message}`, err);
  }
  d.log.debug('image volume view mounted', { view: key, path });
  return path;
}

/** Unmounts and removes one view (idempotent). */
async function removeView(d: ImageVolumeDeps, key: string): Promise<void> {
  const path = viewPath(d.settings.state, key);
  unmount(path, { detach: true, all: true });
  try {
    await d.snapshotter.remove(key);
  } catch (err) {
    if (!isBerthError(err, 'NotFound')) throw err;
  }
  for (const p of [path, join(path, '..')]) {
    try {
      rmdirSync(p);
    } catch {
      /* absent, or the pod's dir still holds another view */
    }
  }
  d.log.debug('image volume view removed', { view: key });
}

export interface ImageVolumePlan {
  /** config.mounts with each image mount turned into a read-only bind of its view. */
  mounts: CriMount[];
  /** View keys this container uses (for its record). */
  views: string[];
  /** The create succeeded (its record names the views): stop holding them. */
  done(): void;
  /** The create failed: stop holding them and remove those nobody else uses. */
  abandon(): Promise<void>;
}

/**
 * Turns the image mounts of a container of pod `sandboxId` into binds of their views, making
 * the views as needed. The views stay held by this create until `done` or `abandon`.
 */
export async function prepareImageVolumes(
  d: ImageVolumeDeps,
  ns: string,
  sandboxId: string,
  mounts: readonly CriMount[],
  opts: { idmapWith?: string } = {},
): Promise<ImageVolumePlan> {
  const requests = mounts.flatMap((m, i) => (m.image !== undefined && (m.image.image !== '' || m.hostPath === '') ? [checkImageMount(m, i)] : []));
  if (requests.length === 0) return { mounts: [...mounts], views: [], done: () => undefined, abandon: async () => undefined };
  const out = [...mounts];
  const held: string[] = [];
  const views = new Set<string>();
  const release = (): void => {
    for (const p of held.splice(0)) d.imageVolumes.unpin(p);
  };
  const plan: ImageVolumePlan = {
    mounts: out,
    views: [],
    done: release,
    abandon: async () => {
      release();
      await releaseImageVolumes(d, ns, sandboxId, [...views]);
    },
  };
  try {
    for (const r of requests) {
      const image = await d.images.find(ns, r.image);
      if (!image)
        throw errors.notFound(
          'container.image_volume_not_found',
          `${r.field}.image.image: image ${JSON.stringify(r.image)} not found (kubelet pulls it before CreateContainer)`,
        );
      const key = viewKey(sandboxId, image.id);
      const path = await d.locks.run(lockKey(sandboxId), async () => {
        const p = await ensureView(d, key, image, opts.idmapWith);
        d.imageVolumes.pin(p);
        held.push(p);
        return p;
      });
      views.add(key);
      const hostPath = resolveBeneath(path, r.subPath, `${r.field}.image_sub_path`, `image ${JSON.stringify(r.image)}`);
      const m = clone(MountSchema, mounts[r.index]!);
      m.hostPath = hostPath;
      m.image = undefined;
      m.imageSubPath = '';
      // The view itself is idmapped (with the pod's user namespace) or not at all: runc must
      // not try to idmap the bind.
      m.uidMappings = [];
      m.gidMappings = [];
      m.mountOptions = [...new Set([...m.mountOptions, ...IMAGE_VOLUME_OPTIONS])];
      out[r.index] = m;
    }
  } catch (err) {
    await plan.abandon();
    throw err;
  }
  plan.views = [...views];
  return plan;
}

/**
 * Removes the views of pod `sandboxId` (those in `keys`, or all of the pod's) that no container
 * record and no create in flight uses. Never throws: a view that cannot be removed is logged
 * and left to the sweep at the next start.
 */
export async function releaseImageVolumes(d: ImageVolumeDeps, ns: string, sandboxId: string, keys?: readonly string[]): Promise<void> {
  await d.locks.run(lockKey(sandboxId), async () => {
    let candidates: Set<string>;
    try {
      candidates = new Set(keys ?? (await podViews(d, sandboxId)));
    } catch (err) {
      d.log.warn('cannot list the image volume views of a pod; the next start sweeps them', { sandbox: sandboxId, error: err });
      return;
    }
    if (candidates.size === 0) return;
    const used = usedViews(d.containers.bySandbox(ns, sandboxId));
    let gc = false;
    for (const key of candidates) {
      if (used.has(key) || d.imageVolumes.has(viewPath(d.settings.state, key))) continue;
      try {
        await removeView(d, key);
      } catch (err) {
        d.log.warn('cannot remove an image volume view; the next start retries', { view: key, error: err });
        continue;
      }
      const img = parseViewKey(key);
      if (img && !(await d.images.get(ns, img.imageId).catch(() => undefined))) gc = true;
    }
    // The image was removed while the view held its layers: they can go now.
    if (gc) await d.images.gc().catch((err: unknown) => d.log.warn('garbage collection after an image volume failed', { error: err }));
  });
}

async function podViews(d: ImageVolumeDeps, sandboxId: string): Promise<string[]> {
  const keys = new Set((await d.snapshotter.list()).map((s) => s.key).filter((k) => parseViewKey(k)?.sandboxId === sandboxId));
  try {
    for (const hex of readdirSync(join(viewsRoot(d.settings.state), sandboxId))) keys.add(`${VIEW_PREFIX}${sandboxId}-${hex}`);
  } catch {
    /* no dir */
  }
  return [...keys].filter((k) => parseViewKey(k));
}

/**
 * After recovery: removes every view no container record names (a berthd that died between
 * making a view and recording its container, or while removing one), and mount dirs left
 * without a snapshot. Returns how many went.
 */
export async function sweepImageVolumes(d: ImageVolumeDeps): Promise<number> {
  const used = usedViews(d.containers.all().map((c) => c.record));
  const keys = new Set((await d.snapshotter.list()).map((s) => s.key).filter((k) => parseViewKey(k)));
  const root = viewsRoot(d.settings.state);
  let sandboxes: string[] = [];
  try {
    sandboxes = readdirSync(root);
  } catch {
    /* none yet */
  }
  for (const sb of sandboxes) {
    if (sb === '.empty') continue;
    let hexes: string[];
    try {
      hexes = readdirSync(join(root, sb));
    } catch {
      continue;
    }
    for (const hex of hexes) {
      const key = `${VIEW_PREFIX}${sb}-${hex}`;
      if (parseViewKey(key)) keys.add(key);
      else d.log.warn('unexpected entry among image volume views, left alone', { path: join(root, sb, hex) });
    }
  }
  let removed = 0;
  for (const key of keys) {
    if (used.has(key) || d.imageVolumes.has(viewPath(d.settings.state, key))) continue;
    try {
      await removeView(d, key);
      removed++;
    } catch (err) {
      d.log.warn('cannot remove a leftover image volume view; skipped', { view: key, error: err });
    }
  }
  return removed;
}
