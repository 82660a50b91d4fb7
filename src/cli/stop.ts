/** `berth stop [-t SECONDS] CONTAINER...`: StopContainer with a grace period. */
import { UsageError, type Verb } from './common.js';
import { intFlag } from './flags.js';
import { resolveContainerId } from './resolve.js';
import { verbArgs } from './verb-args.js';

export const stop: Verb = {
  summary: 'Stop running containers',
  usage: 'berth stop [-t|--timeout SECONDS] CONTAINER...\n\n  -t, --timeout SECONDS   grace period before SIGKILL (default 10; 0 kills at once)',
  rawArgs: true,
  async run(args, ctx) {
    const { flags, positionals } = verbArgs(args, { timeout: { type: 'string', short: 't' } }, ctx);
    if (positionals.length === 0) throw new UsageError('stop needs at least one CONTAINER');
    const timeout = BigInt(intFlag(flags.timeout, '--timeout', 10));
    for (const ref of positionals) {
      const id = await resolveContainerId(ctx, ref);
      await ctx.cri().runtime.stopContainer({ containerId: id, timeout }, { timeoutMs: (Number(timeout) + 30) * 1000 });
      ctx.out(id);
    }
    return 0;
  },
};
