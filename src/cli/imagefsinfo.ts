/** `berth imagefsinfo`: usage of the image filesystem. */
import { humanBytes, table, toJson, type Verb } from './common.js';

export const imagefsinfo: Verb = {
  summary: 'Show image filesystem usage',
  usage: 'berth imagefsinfo [-o json]',
  async run(_args, ctx) {
    const res = await ctx.cri().image.imageFsInfo({});
    if (ctx.output === 'json') {
      ctx.out(toJson(res));
      return 0;
    }
    ctx.out(
      table(
        ['MOUNTPOINT', 'USED', 'INODES'],
        res.imageFilesystems.map((f) => [f.fsId?.mountpoint ?? '', humanBytes(Number(f.usedBytes?.value ?? 0n)), String(f.inodesUsed?.value ?? 0n)]),
      ),
    );
    return 0;
  },
};
