/** ImageService/ListImages (filter: image spec → that image only). */
import type { ImageService } from '../core/images/service.js';
import { toCriImage } from './image-convert.js';
import type { ImageHandlers } from './server.js';

export const listImages = (images: ImageService): NonNullable<ImageHandlers['listImages']> => async (req, ctx) => {
  const wanted = req.filter?.image?.image;
  if (wanted) {
    const img = await images.find(ctx.namespace, wanted);
    return { images: img ? [toCriImage(img)] : [] };
  }
  return { images: (await images.list(ctx.namespace)).map(toCriImage) };
};
