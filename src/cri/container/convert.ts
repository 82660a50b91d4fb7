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
  return imageViews(ctx, ns)(c);
}

/**
 * imageView for many containers (ListContainers): each image id is looked up once per call,
 * not once per container (200 containers of one image were 200 lookups).
 */
export function imageViews(ctx: RuntimeContext, ns: string): (c: ContainerRecord) => Promise<{ image: string; imageRef: string }> {
  const byId = new Map<string, Promise<{ tag?: string; ref: string } | undefined>>();
  return async (c) => {
    let p = byId.get(c.imageId);
    if (!p) {
      p = ctx.images.find(ns, c.imageId).then(
        (img) => img && { tag: img.repoTags[0], ref: img.repoDigests[0] ?? img.id },
        () => undefined,
      );
      byId.set(c.imageId, p);
    }
    const v = await p;
    if (!v) return { image: c.image, imageRef: c.imageRef };
    return { image: v.tag ?? c.image, imageRef: v.ref };
  };
}
