/** ImageService/ListImages (filter: image spec → that image only); StreamImages. */
import { create, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import { ListImagesResponseSchema, type ImageSchema } from '../../api/cri/runtime/v1/api_pb.js';
import type { Image, ImageService } from '../../core/images/service.js';
import { EncodedResponse } from '../server/grpc.js';
import { toCriImage } from './convert.js';
import type { ImageHandlers } from '../server/server.js';
import { writePages } from '../server/stream-pages.js';

/**
 * The encoded answer per image list: ImageService.list returns the same array while the image
 * records stay the same, so an unchanged list is sent without converting and encoding again.
 */
// Process-wide: keyed by the cached list object itself, which belongs to one ImageService.
const encodedLists = new WeakMap<Image[], EncodedResponse>();

type ListImagesResult = Awaited<ReturnType<NonNullable<ImageHandlers['listImages']>>>;

async function criImages(images: ImageService, ns: string, wanted: string | undefined): Promise<Array<MessageInitShape<typeof ImageSchema>>> {
  if (wanted) {
    const img = await images.find(ns, wanted);
    return img ? [toCriImage(img)] : [];
  }
  return (await images.list(ns)).map(toCriImage);
}

export const listImages =
  (images: ImageService): NonNullable<ImageHandlers['listImages']> =>
  async (req, ctx) => {
    const wanted = req.filter?.image?.image;
    if (wanted) return { images: await criImages(images, ctx.namespace, wanted) };
    const all = await images.list(ctx.namespace);
    let enc = encodedLists.get(all);
    if (!enc) {
      enc = new EncodedResponse(toBinary(ListImagesResponseSchema, create(ListImagesResponseSchema, { images: all.map(toCriImage) })));
      encodedLists.set(all, enc);
    }
    return enc as unknown as ListImagesResult;
  };

/** ImageService/StreamImages: ListImages' images and filter, in pages. */
export const streamImages =
  (images: ImageService): NonNullable<ImageHandlers['streamImages']> =>
  async (req, write, ctx) => {
    const all = await criImages(images, ctx.namespace, req.filter?.image?.image);
    await writePages(all, (page) => ({ images: page }), write, ctx);
  };
