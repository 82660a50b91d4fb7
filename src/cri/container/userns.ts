/**
 * The user-namespace side of a container's rootfs: in a pod with its own user namespace
 * (hostUsers=false, userns_options mode POD) the container stacks on a copy of the image
 * whose files belong to the mapped host ids (src/core/snapshots/remap.ts), because runc 1.1
 * cannot idmap-mount. Pods on the host's user namespace use the image snapshot directly.
 */
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { PodSandboxConfig } from '../../api/cri/runtime/v1/api_pb.js';
import { errors, isBerthError } from '../../errors.js';
import { isRemapName, prepareRemapped, pruneRemapped, type Mount } from '../../core/snapshots/index.js';
import { userNamespacePlan } from '../../oci/namespaces.js';
import type { RuntimeContext } from '../server/runtime-context.js';

/** Prepares the container's rootfs snapshot `key` on the image chain `chain`. */
export async function prepareContainerRootfs(
  ctx: RuntimeContext,
  key: string,
  chain: string,
  sandboxConfig: PodSandboxConfig,
  labels: Record<string, string>,
  tmpParent: string,
): Promise<Mount[]> {
  const plan = userNamespacePlan(sandboxConfig.linux?.securityContext?.namespaceOptions, 'sandbox_config.linux.security_context.namespace_options');
  if (!plan) return ctx.snapshotter.prepare(key, chain, labels);
  return prepareRemapped(ctx.snapshotter, key, chain, plan, labels, tmpParent);
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
    const removed = await pruneRemapped(ctx.snapshotter);
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
