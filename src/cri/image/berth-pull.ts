/** berth.v1.Berth/Pull: PullImage with a stream of per-layer progress (used by `berth pull`). */
import type { PullProgress } from '../../core/images/pull.js';
import type { ImageService } from '../../core/images/service.js';
import { errors } from '../../errors.js';
import { credentialsFrom } from './pull.js';
import type { BerthHandlers } from '../server/server.js';

const snapshot = (image: string, p: PullProgress) => ({
  image,
  layers: p.layers.map((l) => ({ digest: l.digest, mediaType: l.mediaType, size: BigInt(l.size), fetched: BigInt(l.fetched), status: l.status })),
  done: false,
  imageId: p.imageId,
  elapsedMs: BigInt(Date.now() - p.startedAt),
});

export const berthPull =
  (images: ImageService): NonNullable<BerthHandlers['pull']> =>
  async (req, write, ctx) => {
    const ref = req.image?.image ?? '';
    if (!ref) throw errors.invalidArgument('image.empty_reference', 'image.image: an image reference is required');
    let progress: PullProgress | undefined;
    let timer: NodeJS.Timeout | undefined;
    const result = images.pull(ctx.namespace, ref, credentialsFrom(req.auth), (p) => (progress = p), ctx.signal);
    try {
      timer = setInterval(() => progress && write(snapshot(ref, progress)), 200);
      const img = await result;
      write({ ...snapshot(ref, progress!), done: true, imageId: img.id });
    } finally {
      clearInterval(timer);
    }
  };
