/** `berth rmp [-f] POD...`: RemovePodSandbox (-f stops a ready pod first). */
import { PodSandboxState } from '../api/cri/runtime/v1/api_pb.js';
import { UsageError, type Verb } from './common.js';
import { resolvePodId } from './resolve.js';
import { verbArgs } from './verb-args.js';

export const rmp: Verb = {
  summary: 'Remove pod sandboxes',
  usage: 'berth rmp [-f|--force] [-a|--all] POD...\n\n  -f, --force   stop ready pods first\n  -a, --all     every pod',
  rawArgs: true,
  async run(args, ctx) {
    const { flags, positionals } = verbArgs(args, { force: { type: 'boolean', short: 'f' }, all: { type: 'boolean', short: 'a' } }, ctx);
    const rt = ctx.cri().runtime;
    let ids: string[];
    if (flags.all) ids = (await rt.listPodSandbox({})).items.map((p) => p.id);
    else {
      if (positionals.length === 0) throw new UsageError('rmp needs at least one POD (or --all)');
      ids = [];
      for (const ref of positionals) ids.push(await resolvePodId(ctx, ref));
    }
    let rc = 0;
    for (const id of ids) {
      const st = await rt.podSandboxStatus({ podSandboxId: id }).catch(() => undefined);
      if (st?.status?.state === PodSandboxState.SANDBOX_READY) {
        if (!flags.force) {
          ctx.err(`pod ${id.slice(0, 13)} is ready: stop it first (berth stopp) or use rmp -f`);
          rc = 1;
          continue;
        }
        await rt.stopPodSandbox({ podSandboxId: id });
      }
      await rt.removePodSandbox({ podSandboxId: id });
      ctx.out(`Removed sandbox ${id}`);
    }
    return rc;
  },
};
