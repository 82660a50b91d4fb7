/** Pulls an image unless berthd already has it (create/run convenience, like crictl's). */
import type { PodSandboxConfig } from '../api/cri/runtime/v1/api_pb.js';
import type { CliContext } from './common.js';

/** The image id; `sandboxConfig` is passed to PullImage as the CRI allows (runtime class hints). */
export async function ensureImage(ctx: CliContext, image: string, sandboxConfig?: PodSandboxConfig): Promise<string> {
  const svc = ctx.cri().image;
  const st = await svc.imageStatus({ image: { image } });
  if (st.image) return st.image.id;
  ctx.err(`pulling ${image} ...`);
  const res = await svc.pullImage({ image: { image }, sandboxConfig });
  return res.imageRef;
}
