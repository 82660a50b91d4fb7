/** ImageService/ImageStatus: an unknown image is an empty response, not an error. */
import type { ImageService } from '../../core/images/service.js';
import { errors } from '../../errors.js';
import { toCriImage } from './convert.js';
import type { ImageHandlers } from '../server/server.js';

export const imageStatus =
  (images: ImageService): NonNullable<ImageHandlers['imageStatus']> =>
  async (req, ctx) => {
    const spec = req.image?.image ?? '';
    if (!spec) throw errors.invalidArgument('image.empty_reference', 'image.image: an image reference or id is required');
    const img = await images.find(ctx.namespace, spec);
    if (!img) return {};
    const info: Record<string, string> = {};
    if (req.verbose) {
      info.info = JSON.stringify({
        id: img.id,
        chainID: img.topChainID,
        chainIDs: img.chainIDs,
        size: img.size,
        manifest: img.manifest,
        imageSpec: img.config,
        names: img.records.map((r) => r.name),
      });
    }
    return { image: toCriImage(img), info };
  };
