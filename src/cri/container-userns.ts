/**
 * The user-namespace side of a container's rootfs: in a pod with its own user namespace
 * (hostUsers=false, userns_options mode POD) the container stacks on a copy of the image
 * whose files belong to the mapped host ids (src/core/snapshots/remap.ts), because runc 1.1
 * cannot idmap-mount. Pods on the host's user namespace use the image snapshot directly.
 */
import type { PodSandboxConfig } from '../api/cri/runtime/v1/api_pb.js';
import { prepareRemapped, pruneRemapped, type Mount } from '../core/snapshots/index.js';
import { userNamespacePlan } from '../oci/namespaces.js';
import type { RuntimeContext } from './runtime-context.js';

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

/** Drops remapped image copies no container stacks on any more (after a container's removal). */
export async function pruneUnusedRemaps(ctx: RuntimeContext): Promise<void> {
  const removed = await pruneRemapped(ctx.snapshotter);
  if (removed.length > 0) ctx.log.debug('removed unused remapped rootfs parents', { snapshots: removed });
}
