/** ContainerRecord → CRI messages (shared by ContainerStatus and ListContainers). */
import { ContainerState } from '../../api/cri/runtime/v1/api_pb.js';
import type { ContainerRecord } from '../../core/metadata/records.js';
import type { RuntimeContext } from '../server/runtime-context.js';

export const criState: Record<ContainerRecord['state'], ContainerState> = {
  created: ContainerState.CONTAINER_CREATED,
  running: ContainerState.CONTAINER_RUNNING,
  exited: ContainerState.CONTAINER_EXITED,
  unknown: ContainerState.CONTAINER_UNKNOWN,
};

export const nanos = (s: string | undefined): bigint => (s ? BigInt(s) : 0n);

/**
 * The image as containerd reports it: the spec names the first repo tag (else what the user
 * gave), image_ref prefers the first repo digest (else the image id).
 */
export async function imageView(ctx: RuntimeContext, ns: string, c: ContainerRecord): Promise<{ image: string; imageRef: string }> {
  const img = await ctx.images.find(ns, c.imageId).catch(() => undefined);
  if (!img) return { image: c.image, imageRef: c.imageRef };
  return { image: img.repoTags[0] ?? c.image, imageRef: img.repoDigests[0] ?? img.id };
}
