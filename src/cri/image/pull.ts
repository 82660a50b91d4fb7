/** ImageService/PullImage: pull an image (shared with concurrent pulls of the same reference). */
import type { AuthConfig } from '../../api/cri/runtime/v1/api_pb.js';
import type { Credentials } from '../../core/images/ports.js';
import type { ImageService } from '../../core/images/service.js';
import { errors } from '../../errors.js';
import type { ImageHandlers } from '../server/server.js';

export function credentialsFrom(auth: AuthConfig | undefined): Credentials | undefined {
  if (!auth) return undefined;
  const c: Credentials = {
    username: auth.username || undefined,
    password: auth.password || undefined,
    auth: auth.auth || undefined,
    serverAddress: auth.serverAddress || undefined,
    identityToken: auth.identityToken || undefined,
    registryToken: auth.registryToken || undefined,
  };
  return Object.values(c).some((v) => v !== undefined) ? c : undefined;
}

export const pullImage =
  (images: ImageService): NonNullable<ImageHandlers['pullImage']> =>
  async (req, ctx) => {
    const ref = req.image?.image ?? '';
    if (!ref) throw errors.invalidArgument('image.empty_reference', 'image.image: an image reference is required');
    const img = await images.pull(ctx.namespace, ref, credentialsFrom(req.auth), undefined, ctx.signal);
    return { imageRef: img.id };
  };
