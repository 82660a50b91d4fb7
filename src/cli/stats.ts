/**
 * `berth stats [CONTAINER] [--pods]`: CPU from two samples (usage delta / time delta), memory
 * working set, writable layer bytes and inodes.
 */
import type { ContainerStats, CpuUsage, PodSandboxStats } from '../api/cri/runtime/v1/api_pb.js';
import { humanBytes, table, UsageError, type Verb } from './common.js';
import { keyValues } from './flags.js';
import { truncId } from './format.js';
import { resolveContainerId, resolvePodId } from './resolve.js';
import { emitDocument, wantsDocument } from './output.js';
import { verbArgs } from './verb-args.js';

/** CPU percent of one core between two samples; undefined when it cannot be computed. */
export function cpuPercent(a: CpuUsage | undefined, b: CpuUsage | undefined): number | undefined {
  const ua = a?.usageCoreNanoSeconds?.value;
  const ub = b?.usageCoreNanoSeconds?.value;
  if (ua === undefined || ub === undefined || !a || !b) return undefined;
  const dt = Number(b.timestamp - a.timestamp);
  if (dt <= 0) return undefined;
  return (Number(ub - ua) / dt) * 100;
}

function pct(v: number | undefined): string {
  return v === undefined ? '-' : v.toFixed(2);
}

function opt(v: bigint | undefined, f: (n: number) => string): string {
  return v === undefined ? '-' : f(Number(v));
}

export function containerStatsTable(first: readonly ContainerStats[], second: readonly ContainerStats[]): string {
  const before = new Map(first.map((s) => [s.attributes?.id ?? '', s]));
  return table(
    ['CONTAINER', 'NAME', 'CPU %', 'MEM', 'DISK', 'INODES'],
    second.map((s) => {
      const id = s.attributes?.id ?? '';
      return [
        truncId(id),
        s.attributes?.metadata?.name ?? '',
        pct(cpuPercent(before.get(id)?.cpu, s.cpu)),
        opt(s.memory?.workingSetBytes?.value, humanBytes),
        opt(s.writableLayer?.usedBytes?.value, humanBytes),
        opt(s.writableLayer?.inodesUsed?.value, String),
      ];
    }),
  );
}

export function podStatsTable(first: readonly PodSandboxStats[], second: readonly PodSandboxStats[]): string {
  const before = new Map(first.map((s) => [s.attributes?.id ?? '', s]));
  return table(
    ['POD', 'NAME', 'CPU %', 'MEM', 'CONTAINERS'],
    second.map((s) => {
      const id = s.attributes?.id ?? '';
      return [
        truncId(id),
        s.attributes?.metadata?.name ?? '',
        pct(cpuPercent(before.get(id)?.linux?.cpu, s.linux?.cpu)),
        opt(s.linux?.memory?.workingSetBytes?.value, humanBytes),
        String(s.linux?.containers.length ?? 0),
      ];
    }),
  );
}

export const stats: Verb = {
  summary: 'Show container (or pod) resource usage',
  usage: [
    'berth stats [--pods] [-p POD] [-l K=V]... [--interval SECONDS] [-o json] [CONTAINER|POD]',
    '',
    '      --pods           pod sandboxes instead of containers',
    '  -p, --pod POD        containers of one pod',
    '  -l, --label K=V      label selector (repeatable)',
    '      --interval S     seconds between the two samples CPU % is computed from (default 1)',
  ].join('\n'),
  rawArgs: true,
  async run(args, ctx) {
    const { flags, positionals } = verbArgs(
      args,
      { pods: { type: 'boolean' }, pod: { type: 'string', short: 'p' }, label: { type: 'strings', short: 'l' }, interval: { type: 'string' } },
      ctx,
    );
    if (positionals.length > 1) throw new UsageError('stats takes at most one CONTAINER (or POD with --pods)');
    const interval = flags.interval === undefined ? 1 : Number(flags.interval);
    if (!Number.isFinite(interval) || interval <= 0 || interval > 60)
      throw new UsageError(`--interval ${JSON.stringify(flags.interval)}: expected seconds in (0, 60]`);
    const labelSelector = keyValues(flags.label, '--label');
    const rt = ctx.cri().runtime;
    const sleep = () => new Promise((r) => setTimeout(r, interval * 1000));
    if (flags.pods) {
      const id = positionals[0] ? await resolvePodId(ctx, positionals[0]) : '';
      const sample = async () => (await rt.listPodSandboxStats({ filter: { id, labelSelector } })).stats;
      const a = await sample();
      if (wantsDocument(ctx)) {
        emitDocument(ctx, { stats: a });
        return 0;
      }
      await sleep();
      ctx.out(podStatsTable(a, await sample()));
      return 0;
    }
    const id = positionals[0] ? await resolveContainerId(ctx, positionals[0]) : '';
    const podSandboxId = flags.pod ? await resolvePodId(ctx, flags.pod) : '';
    const sample = async () => (await rt.listContainerStats({ filter: { id, podSandboxId, labelSelector } })).stats;
    const a = await sample();
    if (wantsDocument(ctx)) {
      emitDocument(ctx, { stats: a });
      return 0;
    }
    await sleep();
    ctx.out(containerStatsTable(a, await sample()));
    return 0;
  },
};
