/** ImageService/ListImages (filter: image spec → that image only); StreamImages. */
import type { ImageService } from '../../core/images/service.js';
import { toCriImage } from './convert.js';
import type { ImageHandlers } from '../server/server.js';
import { writePages } from '../server/stream-pages.js';

export const listImages =
  (images: ImageService): NonNullable<ImageHandlers['listImages']> =>
  async (req, ctx) => {
    const wanted = req.filter?.image?.image;
    if (wanted) {
      const img = await images.find(ctx.namespace, wanted);
      return { images: img ? [toCriImage(img)] : [] };
    }
    return { images: (await images.list(ctx.namespace)).map(toCriImage) };
  };

/** ImageService/StreamImages: ListImages' images and filter, in pages. */
export const streamImages = (images: ImageService): NonNullable<ImageHandlers['streamImages']> => {
  const list = listImages(images);
  return async (req, write, ctx) => {
    const { images: all } = await list({ $typeName: 'runtime.v1.ListImagesRequest', filter: req.filter }, ctx);
    await writePages(all ?? [], (page) => ({ images: page }), write, ctx);
  };
};
