/** `berth rmi IMAGE...`: remove images by id, tag or digest. */
import { UsageError, type Verb } from './common.js';

export const rmi: Verb = {
  summary: 'Remove images',
  usage: 'berth rmi IMAGE...',
  async run(args, ctx) {
    if (args.length === 0) throw new UsageError('rmi needs at least one IMAGE');
    let rc = 0;
    for (const image of args) {
      const st = await ctx.cri().image.imageStatus({ image: { image } });
      if (!st.image) {
        ctx.err(`no such image: ${image}`);
        rc = 1;
        continue;
      }
      await ctx.cri().image.removeImage({ image: { image } });
      ctx.out(`Deleted: ${image}`);
    }
    return rc;
  },
};
