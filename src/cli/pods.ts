/** `berth pods`: list pod sandboxes (table, -q ids, or -o json). */
import type { MessageInitShape } from '@bufbuild/protobuf';
import { type PodSandbox, type PodSandboxFilterSchema } from '../api/cri/runtime/v1/api_pb.js';
import { table, UsageError, type Verb } from './common.js';
import { keyValues } from './flags.js';
import { ago, parsePodState, podStateName, truncId } from './format.js';
import { emitDocument, wantsDocument } from './output.js';
import { verbArgs } from './verb-args.js';

export interface PodFilter {
  name?: string;
  namespace?: string;
  idPrefix?: string;
}

/** Client-side filters the CRI filter cannot express (name/namespace substrings, id prefix). */
export function filterPods(items: readonly PodSandbox[], f: PodFilter): PodSandbox[] {
  return items
    .filter((p) => (f.idPrefix ? p.id.startsWith(f.idPrefix) : true))
    .filter((p) => (f.name ? (p.metadata?.name ?? '').includes(f.name) : true))
    .filter((p) => (f.namespace ? p.metadata?.namespace === f.namespace : true))
    .sort((a, b) => (b.createdAt > a.createdAt ? 1 : b.createdAt < a.createdAt ? -1 : 0));
}

export function podsTable(items: readonly PodSandbox[], nowMs: number = Date.now()): string {
  return table(
    ['POD ID', 'CREATED', 'STATE', 'NAME', 'NAMESPACE', 'ATTEMPT', 'RUNTIME'],
    items.map((p) => [
      truncId(p.id),
      ago(p.createdAt, nowMs),
      podStateName(p.state),
      p.metadata?.name ?? '',
      p.metadata?.namespace ?? '',
      String(p.metadata?.attempt ?? 0),
      p.runtimeHandler || '(default)',
    ]),
  );
}

export const pods: Verb = {
  summary: 'List pod sandboxes',
  usage: [
    'berth pods [--name S] [--namespace NS] [--state ready|notready] [--label K=V]... [--id PREFIX] [-q] [-o json]',
    '',
    '      --name S         pods whose name contains S',
    '      --namespace NS   pods in the Kubernetes namespace NS',
    '      --state STATE    ready or notready',
    '  -l, --label K=V      pods carrying the label (repeatable; all must match)',
    '      --id PREFIX      pods whose id starts with PREFIX',
    '  -q, --quiet          only full pod ids',
  ].join('\n'),
  rawArgs: true,
  async run(args, ctx) {
    const { flags, positionals } = verbArgs(
      args,
      {
        name: { type: 'string' },
        namespace: { type: 'string' },
        state: { type: 'string' },
        label: { type: 'strings', short: 'l' },
        id: { type: 'string' },
        quiet: { type: 'boolean', short: 'q' },
      },
      ctx,
    );
    if (positionals.length > 0) throw new UsageError(`pods takes no arguments (got ${JSON.stringify(positionals[0])})`);
    const filter: MessageInitShape<typeof PodSandboxFilterSchema> = { labelSelector: keyValues(flags.label, '--label') };
    if (flags.state !== undefined) {
      const state = parsePodState(flags.state);
      if (state === undefined) throw new UsageError(`--state ${JSON.stringify(flags.state)}: expected ready or notready`);
      filter.state = { state };
    }
    const res = await ctx.cri().runtime.listPodSandbox({ filter });
    const items = filterPods(res.items, { name: flags.name, namespace: flags.namespace, idPrefix: flags.id });
    if (flags.quiet) {
      if (items.length) ctx.out(items.map((p) => p.id).join('\n'));
      return 0;
    }
    if (wantsDocument(ctx)) emitDocument(ctx, { items });
    else ctx.out(podsTable(items));
    return 0;
  },
};
