/** ImageService/ImageStatus: an unknown image is an empty response, not an error. */
import { create, toBinary } from '@bufbuild/protobuf';
import { ImageStatusResponseSchema } from '../../api/cri/runtime/v1/api_pb.js';
import type { Image, ImageService } from '../../core/images/service.js';
import { EncodedResponse } from '../server/grpc.js';
import { errors } from '../../errors.js';
import { toCriImage } from './convert.js';
import type { ImageHandlers } from '../server/server.js';

/**
 * The encoded non-verbose answer per image: ImageService hands out the same Image object while
 * the image records stay the same.
 */
// Process-wide: keyed by the cached Image object itself, which belongs to one ImageService.
const encoded = new WeakMap<Image, EncodedResponse>();

export const imageStatus =
  (images: ImageService): NonNullable<ImageHandlers['imageStatus']> =>
  async (req, ctx) => {
    const spec = req.image?.image ?? '';
    if (!spec) throw errors.invalidArgument('image.empty_reference', 'image.image: an image reference or id is required');
    const img = await images.find(ctx.namespace, spec);
    if (!img) return {};
    if (!req.verbose) {
      let enc = encoded.get(img);
      if (!enc) {
        enc = new EncodedResponse(toBinary(ImageStatusResponseSchema, create(ImageStatusResponseSchema, { image: toCriImage(img) })));
        encoded.set(img, enc);
      }
      return enc as unknown as Awaited<ReturnType<NonNullable<ImageHandlers['imageStatus']>>>;
    }
    const info: Record<string, string> = {};
    info.info = JSON.stringify({
      id: img.id,
      chainID: img.topChainID,
      chainIDs: img.chainIDs,
      size: img.size,
      manifest: img.manifest,
      imageSpec: img.config,
      names: img.records.map((r) => r.name),
    });
    return { image: toCriImage(img), info };
  };
