/** ImageService/RemoveImage: by id, tag or digest; idempotent. */
import type { ImageService } from '../../core/images/service.js';
import { errors } from '../../errors.js';
import type { ImageHandlers } from '../server/server.js';

export const removeImage =
  (images: ImageService): NonNullable<ImageHandlers['removeImage']> =>
  async (req, ctx) => {
    const spec = req.image?.image ?? '';
    if (!spec) throw errors.invalidArgument('image.empty_reference', 'image.image: an image reference or id is required');
    await images.remove(ctx.namespace, spec);
    return {};
  };
