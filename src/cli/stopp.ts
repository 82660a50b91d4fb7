/** `berth stopp POD...`: StopPodSandbox (stops its containers, tears down its network). */
import { UsageError, type Verb } from './common.js';
import { resolvePodId } from './resolve.js';
import { verbArgs } from './verb-args.js';

export const stopp: Verb = {
  summary: 'Stop pod sandboxes',
  usage: 'berth stopp POD...\n\nPOD is an id, a unique id prefix or a name.',
  rawArgs: true,
  async run(args, ctx) {
    const { positionals } = verbArgs(args, {}, ctx);
    if (positionals.length === 0) throw new UsageError('stopp needs at least one POD');
    for (const ref of positionals) {
      const id = await resolvePodId(ctx, ref);
      await ctx.cri().runtime.stopPodSandbox({ podSandboxId: id });
      ctx.out(`Stopped sandbox ${id}`);
    }
    return 0;
  },
};
