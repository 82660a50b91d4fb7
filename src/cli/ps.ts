/** `berth ps [-a]`: list containers (running ones unless -a). */
import type { MessageInitShape } from '@bufbuild/protobuf';
import { ContainerState, type Container, type ContainerFilterSchema } from '../api/cri/runtime/v1/api_pb.js';
import { table, UsageError, type Verb } from './common.js';
import { keyValues } from './flags.js';
import { ago, containerStateName, parseContainerState, shortImage, truncId } from './format.js';
import { resolvePodId } from './resolve.js';
import { emitDocument, wantsDocument } from './output.js';
import { verbArgs } from './verb-args.js';

export interface ContainerListFilter {
  all: boolean;
  name?: string;
  idPrefix?: string;
  /** A state filter was given: it wins over the running-only default. */
  stateGiven: boolean;
}

export function filterContainers(items: readonly Container[], f: ContainerListFilter): Container[] {
  return items
    .filter((c) => f.all || f.stateGiven || c.state === ContainerState.CONTAINER_RUNNING)
    .filter((c) => (f.idPrefix ? c.id.startsWith(f.idPrefix) : true))
    .filter((c) => (f.name ? (c.metadata?.name ?? '').includes(f.name) : true))
    .sort((a, b) => (b.createdAt > a.createdAt ? 1 : b.createdAt < a.createdAt ? -1 : 0));
}

export function containersTable(items: readonly Container[], nowMs: number = Date.now()): string {
  return table(
    ['CONTAINER', 'IMAGE', 'CREATED', 'STATE', 'NAME', 'ATTEMPT', 'POD ID'],
    items.map((c) => [
      truncId(c.id),
      shortImage(c.image?.image || c.imageRef),
      ago(c.createdAt, nowMs),
      containerStateName(c.state),
      c.metadata?.name ?? '',
      String(c.metadata?.attempt ?? 0),
      truncId(c.podSandboxId),
    ]),
  );
}

export const ps: Verb = {
  summary: 'List containers',
  usage: [
    'berth ps [-a] [-p POD] [--state STATE] [--name S] [--label K=V]... [--id PREFIX] [-q] [-o json]',
    '',
    '  -a, --all          all containers (default: running ones)',
    '  -p, --pod POD      containers of one pod (id, id prefix or name)',
    '      --state STATE  created, running, exited or unknown',
    '      --name S       containers whose name contains S',
    '  -l, --label K=V    containers carrying the label (repeatable)',
    '      --id PREFIX    containers whose id starts with PREFIX',
    '  -q, --quiet        only full container ids',
  ].join('\n'),
  rawArgs: true,
  async run(args, ctx) {
    const { flags, positionals } = verbArgs(
      args,
      {
        all: { type: 'boolean', short: 'a' },
        pod: { type: 'string', short: 'p' },
        state: { type: 'string' },
        name: { type: 'string' },
        label: { type: 'strings', short: 'l' },
        id: { type: 'string' },
        quiet: { type: 'boolean', short: 'q' },
      },
      ctx,
    );
    if (positionals.length > 0) throw new UsageError(`ps takes no arguments (got ${JSON.stringify(positionals[0])})`);
    const filter: MessageInitShape<typeof ContainerFilterSchema> = { labelSelector: keyValues(flags.label, '--label') };
    if (flags.state !== undefined) {
      const state = parseContainerState(flags.state);
      if (state === undefined) throw new UsageError(`--state ${JSON.stringify(flags.state)}: expected created, running, exited or unknown`);
      filter.state = { state };
    }
    if (flags.pod !== undefined) filter.podSandboxId = await resolvePodId(ctx, flags.pod);
    const res = await ctx.cri().runtime.listContainers({ filter });
    const items = filterContainers(res.containers, { all: flags.all, name: flags.name, idPrefix: flags.id, stateGiven: flags.state !== undefined });
    if (flags.quiet) {
      if (items.length) ctx.out(items.map((c) => c.id).join('\n'));
      return 0;
    }
    if (wantsDocument(ctx)) emitDocument(ctx, { containers: items });
    else ctx.out(containersTable(items));
    return 0;
  },
};
