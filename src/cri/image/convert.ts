/** Core image → CRI runtime.v1.Image. */
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { ImageSchema } from '../../api/cri/runtime/v1/api_pb.js';
import type { Image } from '../../core/images/service.js';

export function toCriImage(img: Image): MessageInitShape<typeof ImageSchema> {
  return {
    id: img.id,
    repoTags: img.repoTags,
    repoDigests: img.repoDigests,
    size: BigInt(img.size),
    uid: img.uid !== undefined ? { value: BigInt(img.uid) } : undefined,
    username: img.username ?? '',
    spec: { image: img.id, annotations: {} },
    pinned: img.pinned,
  };
}
