/** `berth images [IMAGE]`: list images (table or -o json). */
import { humanBytes, shortId, table, toJson, type Verb } from './common.js';

export const images: Verb = {
  summary: 'List images',
  usage: 'berth images [-o json] [IMAGE]',
  async run(args, ctx) {
    const filter = args[0] ? { image: { image: args[0] } } : undefined;
    const res = await ctx.cri().image.listImages({ filter });
    if (ctx.output === 'json') {
      ctx.out(toJson({ images: res.images }));
      return 0;
    }
    const rows: string[][] = [];
    for (const img of res.images) {
      const tags = img.repoTags.length ? img.repoTags : ['<none>'];
      for (const t of tags) {
        const at = t.lastIndexOf(':');
        const repo = t === '<none>' ? (img.repoDigests[0]?.split('@')[0] ?? '<none>') : t.slice(0, at);
        const tag = t === '<none>' ? '<none>' : t.slice(at + 1);
        rows.push([repo, tag, shortId(img.id), humanBytes(Number(img.size)), img.pinned ? 'pinned' : '']);
      }
    }
    ctx.out(table(['IMAGE', 'TAG', 'IMAGE ID', 'SIZE', ''], rows));
    return 0;
  },
};
