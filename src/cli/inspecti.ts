/** `berth inspecti IMAGE`: the image's status with verbose info, as JSON. */
import { toJson, UsageError, type Verb } from './common.js';

export const inspecti: Verb = {
  summary: 'Show an image in detail (JSON)',
  usage: 'berth inspecti IMAGE...',
  async run(args, ctx) {
    if (args.length === 0) throw new UsageError('inspecti needs at least one IMAGE');
    let rc = 0;
    for (const image of args) {
      const res = await ctx.cri().image.imageStatus({ image: { image }, verbose: true });
      if (!res.image) {
        ctx.err(`no such image: ${image}`);
        rc = 1;
        continue;
      }
      const info = res.info.info ? (JSON.parse(res.info.info) as unknown) : undefined;
      ctx.out(toJson({ status: res.image, info }));
    }
    return rc;
  },
};
