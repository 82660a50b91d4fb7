/**
 * ImageService/RemoveImage: by id, tag or digest; idempotent. An image a container mounts as
 * an image volume is not removed (FailedPrecondition naming the containers; see
 * container/image-volume.ts): the container would keep its view, but the image would vanish
 * from ListImages and kubelet's accounting while its layers stay on disk.
 */
import type { ImageService } from '../../core/images/service.js';
import { errors } from '../../errors.js';
import { imageVolumeUsers } from '../container/image-volume.js';
import type { ContainerRecord } from '../../core/metadata/records.js';
import type { ImageHandlers } from '../server/server.js';

export interface ImageVolumeUse {
  /** The container records of namespace `ns`. */
  containers(ns: string): Iterable<Pick<ContainerRecord, 'id' | 'extra'>>;
  /** View paths with a create in flight. */
  creating(): Iterable<string>;
}

export const removeImage =
  (images: ImageService, use?: ImageVolumeUse): NonNullable<ImageHandlers['removeImage']> =>
  async (req, ctx) => {
    const spec = req.image?.image ?? '';
    if (!spec) throw errors.invalidArgument('image.empty_reference', 'image.image: an image reference or id is required');
    if (use) {
      const img = await images.find(ctx.namespace, spec);
      if (!img) return {};
      const u = imageVolumeUsers(img.id, use.containers(ctx.namespace), use.creating());
      if (u.containers.length > 0 || u.creating) {
        const who =
          u.containers.length > 0
            ? `container${u.containers.length > 1 ? 's' : ''} ${u.containers.slice(0, 5).join(', ')}${u.containers.length > 5 ? ` and ${u.containers.length - 5} more` : ''}`
            : 'a container being created';
        throw errors.failedPrecondition(
          'image.in_use_as_volume',
          `image.image: image ${img.id} is mounted as an image volume by ${who}; remove ${u.containers.length > 1 ? 'them' : 'it'} first`,
        );
      }
    }
    await images.remove(ctx.namespace, spec);
    return {};
  };
