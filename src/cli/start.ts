/** `berth start CONTAINER...`: StartContainer. */
import { UsageError, type Verb } from './common.js';
import { resolveContainerId } from './resolve.js';
import { verbArgs } from './verb-args.js';

export const start: Verb = {
  summary: 'Start created containers',
  usage: 'berth start CONTAINER...',
  rawArgs: true,
  async run(args, ctx) {
    const { positionals } = verbArgs(args, {}, ctx);
    if (positionals.length === 0) throw new UsageError('start needs at least one CONTAINER');
    for (const ref of positionals) {
      const id = await resolveContainerId(ctx, ref);
      await ctx.cri().runtime.startContainer({ containerId: id });
      ctx.out(id);
    }
    return 0;
  },
};
