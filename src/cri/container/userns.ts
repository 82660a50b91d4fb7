/**
 * The user-namespace side of a container's rootfs. In a pod with its own user namespace
 * (hostUsers=false, userns_options mode POD) the container's root must own the image's files
 * as the container sees them. Two ways, chosen per daemon (settings.usernsRootfs, probed at
 * start in daemon/features.ts):
 *
 * - idmap: the container's overlay is mounted over *idmapped* clones of the image layers. Each
 *   lower layer dir is cloned detached (open_tree OPEN_TREE_CLONE), idmapped with the pod's
 *   pinned user namespace (mount_setattr MOUNT_ATTR_IDMAP) and moved onto a staging entry
 *   under `<state>/idmap/`; the overlay's lowerdir names the staging entries, its upper and
 *   work dirs stay plain (an idmapped upper makes overlayfs read-only; mount_setattr on the
 *   overlay itself is EINVAL), the upper dir belonging to the host ids the container's root
 *   maps to. Once the shim has mounted the overlay the staging entries are detached again
 *   (`release`): the overlay holds its lower mounts. Nothing is copied: the same layer dirs
 *   serve every mapping.
 * - copy: runc 1.1 cannot idmap-mount, so without the kernel's help the image tree is copied
 *   once per (image chain, mapping) with shifted owners (src/core/snapshots/remap.ts) and the
 *   container stacks its writable layer on that copy.
 *
 * Pods on the host's user namespace use the image snapshot directly.
 */
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { chmod, lchown, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { PodSandboxConfig } from '../../api/cri/runtime/v1/api_pb.js';
import { errors, isBerthError } from '../../errors.js';
import { isIdentity, isRemapName, type Mount } from '../../core/snapshots/index.js';
import { userNamespacePlan } from '../../oci/namespaces.js';
import type { RuntimeContext } from '../server/runtime-context.js';
import { idmapBind, idmapRoot, removeStaging } from './idmap.js';

/** A prepared rootfs: the mounts for the task, and what to undo once the task has mounted them. */
export interface PreparedRootfs {
  mounts: Mount[];
  /** How the ids were handled: image as is, idmapped layers, or the shifted copy. */
  via: 'plain' | 'idmap' | 'copy';
  /** Detaches idmapped staging mounts (after the task is created, and on failure). Idempotent. */
  release(): void;
}

const nothing = (): void => undefined;

/**
 * Replaces the `lowerdir=` of an overlay mount's options by `lowers` (same order: newest
 * first). Throws when `mounts` is not the single overlay mount of an overlayfs snapshot.
 */
export function withLowers(mounts: readonly Mount[], lowers: readonly string[]): Mount[] {
  const m = mounts[0];
  if (mounts.length !== 1 || m?.type !== 'overlay')
    throw errors.internal('container.idmap_rootfs', `the rootfs is not one overlay mount (${mounts.map((x) => x.type).join(', ') || 'none'})`);
  const at = m.options.findIndex((o) => o.startsWith('lowerdir='));
  if (at < 0) throw errors.internal('container.idmap_rootfs', 'the overlay mount names no lowerdir');
  const options = [...m.options];
  options[at] = `lowerdir=${lowers.join(':')}`;
  return [{ ...m, options }];
}

/** `<state>/idmap/r<hash of key>-<n>`: short, so that a long layer chain fits the mount data page. */
function stagingName(root: string, key: string, i: number): string {
  return join(root, `r${createHash('sha256').update(key).digest('hex').slice(0, 16)}-${i}`);
}

/** The active snapshot `key` on `chain`, its overlay over the chain's layers idmapped with `usernsPath`. */
async function prepareIdmapped(ctx: RuntimeContext, key: string, chain: string, labels: Record<string, string>, usernsPath: string): Promise<PreparedRootfs> {
  const sn = ctx.snapshotter;
  const mounts = await sn.prepare(key, chain, labels);
  const staged: string[] = [];
  try {
    const t = await sn.applyTarget(key);
    if (t.mode !== 'overlay' || t.lowers.length === 0)
      throw errors.internal('container.idmap_rootfs', `snapshotter ${sn.driver} gives no overlay over image layers`);
    const root = idmapRoot(ctx.settings.state, ctx.idmapRoots);
    const lowers = t.lowers.map((dir, i) => {
      const target = stagingName(root, key, i);
      mkdirSync(target, { mode: 0o700 });
      staged.push(target);
      idmapBind(dir, target, usernsPath);
      return target;
    });
    const out = withLowers(mounts, lowers);
    // overlay shows the upper dir's own owner and mode for the merged root: a fresh upper dir
    // belongs to host root, which the container's root cannot write through. It gets the
    // owner the image root has through the idmap (the host ids container 0 maps to).
    const top = await stat(lowers[0]!);
    await lchown(t.dir, top.uid, top.gid);
    await chmod(t.dir, top.mode & 0o7777);
    return { mounts: out, via: 'idmap', release: () => removeStaging(staged) };
  } catch (err) {
    removeStaging(staged);
    await sn.remove(key).catch(() => undefined);
    throw err;
  }
}

/**
 * Prepares the container's rootfs snapshot `key` on the image chain `chain`. `usernsPath` is
 * the pod's pinned user namespace (needed for the idmapped way).
 */
export async function prepareContainerRootfs(
  ctx: RuntimeContext,
  key: string,
  chain: string,
  sandboxConfig: PodSandboxConfig,
  labels: Record<string, string>,
  tmpParent: string,
  usernsPath?: string,
): Promise<PreparedRootfs> {
  const plan = userNamespacePlan(sandboxConfig.linux?.securityContext?.namespaceOptions, 'sandbox_config.linux.security_context.namespace_options');
  if (!plan || isIdentity(plan)) return { mounts: await ctx.snapshotter.prepare(key, chain, labels), via: 'plain', release: nothing };
  const how = ctx.settings.usernsRootfs ?? { mode: 'copy', fallback: false };
  if (how.mode === 'idmap') {
    try {
      if (!usernsPath) throw errors.internal('container.idmap_rootfs', 'the pod has no pinned user namespace');
      const r = await prepareIdmapped(ctx, key, chain, labels, usernsPath);
      if (ctx.usernsRootfsLogged.way !== 'idmap') ctx.log.info('user namespace rootfs: overlay over idmapped image layers', { container: key });
      ctx.usernsRootfsLogged.way = 'idmap';
      return r;
    } catch (err) {
      if (!how.fallback) throw err;
      ctx.log.warn('user namespace rootfs: idmapped layers refused, using the ownership-shifted copy', { container: key, error: (err as Error).message });
    }
  }
  const mounts = await ctx.remapper.prepare(key, chain, plan, labels, tmpParent);
  if (ctx.usernsRootfsLogged.way !== 'copy') ctx.log.info('user namespace rootfs: ownership-shifted image copy', { container: key });
  ctx.usernsRootfsLogged.way = 'copy';
  return { mounts, via: 'copy', release: nothing };
}

/**
 * Removes a container's (or pause's) rootfs snapshot; when it stacked on a remapped image
 * copy, drops the copies no snapshot uses any more. Idempotent (an absent snapshot is fine).
 */
export async function removeRootfsSnapshot(ctx: RuntimeContext, key: string): Promise<void> {
  let parent: string | undefined;
  try {
    parent = (await ctx.snapshotter.stat(key)).parent;
    await ctx.snapshotter.remove(key);
  } catch (err) {
    if (!isBerthError(err, 'NotFound')) throw err;
  }
  if (parent !== undefined && isRemapName(parent)) {
    const removed = await ctx.remapper.prune();
    if (removed.length > 0) ctx.log.debug('removed unused remapped rootfs parents', { snapshots: removed });
  }
}

/**
 * A process in a pod user namespace is "other" to every host-root-owned directory (it has no
 * CAP_DAC_OVERRIDE over them), so each ancestor of the state dir, where bundles and rootfs
 * mount points live, must be searchable by others. Checked up front so that the operator reads
 * which directory is the problem instead of runc's bare "permission denied".
 */
export async function checkUsernsReachable(dir: string): Promise<void> {
  const parts = resolve(dir).split('/').filter(Boolean);
  for (let i = 0; i <= parts.length; i++) {
    const d = '/' + parts.slice(0, i).join('/');
    const st = await stat(d).catch(() => undefined);
    if (st && (st.mode & 0o001) === 0) {
      throw errors.failedPrecondition(
        'sandbox.userns_unreachable',
        `config.linux.security_context.namespace_options.userns_options: ${d} is mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}, not searchable by others, so processes in a pod user namespace cannot reach ${dir}`,
      );
    }
  }
}
