/** `berth rm [-f] CONTAINER...`: RemoveContainer (-f stops a running one first). */
import { ContainerState } from '../api/cri/runtime/v1/api_pb.js';
import { UsageError, type Verb } from './common.js';
import { resolveContainerId } from './resolve.js';
import { verbArgs } from './verb-args.js';

export const rm: Verb = {
  summary: 'Remove containers',
  usage: 'berth rm [-f|--force] [-a|--all] CONTAINER...\n\n  -f, --force   stop running containers first (no grace period)\n  -a, --all     every container',
  rawArgs: true,
  async run(args, ctx) {
    const { flags, positionals } = verbArgs(args, { force: { type: 'boolean', short: 'f' }, all: { type: 'boolean', short: 'a' } }, ctx);
    const rt = ctx.cri().runtime;
    let ids: string[];
    if (flags.all) ids = (await rt.listContainers({})).containers.map((c) => c.id);
    else {
      if (positionals.length === 0) throw new UsageError('rm needs at least one CONTAINER (or --all)');
      ids = [];
      for (const ref of positionals) ids.push(await resolveContainerId(ctx, ref));
    }
    let rc = 0;
    for (const id of ids) {
      const st = await rt.containerStatus({ containerId: id }).catch(() => undefined);
      if (st?.status?.state === ContainerState.CONTAINER_RUNNING) {
        if (!flags.force) {
          ctx.err(`container ${id.slice(0, 13)} is running: stop it first or use rm -f`);
          rc = 1;
          continue;
        }
        await rt.stopContainer({ containerId: id, timeout: 0n });
      }
      await rt.removeContainer({ containerId: id });
      ctx.out(id);
    }
    return rc;
  },
};
