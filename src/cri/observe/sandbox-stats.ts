/**
 * PodSandboxStats / ListPodSandboxStats. A pod's CPU, memory and process count are the sum of
 * its containers' and its sandbox (pause) task's cgroups — that works with or without a pod
 * cgroup_parent. Network counters come from /proc/<pid>/net/dev of the pause or of a running
 * container found in the pod's pinned netns (same nsfs inode), which shows that namespace;
 * with no such process (a pod without pause or running containers), from `nsenter --net`.
 */
import { execFile } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { promisify } from 'node:util';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { PodSandboxStatsSchema, type PodSandboxStats } from '../../api/cri/runtime/v1/api_pb.js';
import type { ContainerRecord, SandboxRecord } from '../../core/metadata/records.js';
import { findSandbox, nowNanos, type RuntimeContext } from '../server/runtime-context.js';
import { collectContainerStats, cpuAndMemory, inTurns, matchesLabels, sampleTask, sumSamples, type CgroupSample } from './container-stats.js';
import { writePages } from '../server/stream-pages.js';
import type { RuntimeHandlers } from '../server/server.js';

const run = promisify(execFile);

export interface InterfaceCounters {
  name: string;
  rxBytes: bigint;
  rxErrors: bigint;
  txBytes: bigint;
  txErrors: bigint;
}

/** Parse /proc/net/dev (two header lines, then `name: 8 rx fields 8 tx fields`). */
export function parseNetDev(text: string): InterfaceCounters[] {
  const out: InterfaceCounters[] = [];
  for (const line of text.split('\n').slice(2)) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const f = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/);
    if (f.length < 16) continue;
    out.push({ name: line.slice(0, colon).trim(), rxBytes: BigInt(f[0]!), rxErrors: BigInt(f[2]!), txBytes: BigInt(f[8]!), txErrors: BigInt(f[10]!) });
  }
  return out;
}

/** Counters of the pod's interfaces except loopback; undefined when the netns is unreachable. */
export async function podInterfaces(sb: SandboxRecord, containerPids: readonly number[] = []): Promise<InterfaceCounters[] | undefined> {
  // Synchronous reads: /proc files and the netns handle (nsfs) never wait on a disk, and with
  // the promise API each pod of a ListPodSandboxStats cost up to four thread-pool round trips.
  const read = (path: string): string | undefined => {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return undefined;
    }
  };
  const ino = (path: string): number | undefined => statSync(path, { throwIfNoEntry: false })?.ino;
  let text: string | undefined;
  if (sb.pid) text = read(`/proc/${sb.pid}/net/dev`);
  if (text === undefined && sb.netnsPath && containerPids.length > 0) {
    let want: number | undefined;
    try {
      want = ino(sb.netnsPath);
    } catch {
      want = undefined;
    }
    for (const pid of want === undefined ? [] : containerPids) {
      let got: number | undefined;
      try {
        got = ino(`/proc/${pid}/ns/net`);
      } catch {
        got = undefined;
      }
      if (got !== want) continue;
      text = read(`/proc/${pid}/net/dev`);
      if (text !== undefined) break;
    }
  }
  if (text === undefined && sb.netnsPath) {
    text = await run('nsenter', [`--net=${sb.netnsPath}`, 'cat', '/proc/net/dev'], { timeout: 5000 }).then(
      (r) => r.stdout,
      () => undefined,
    );
  }
  return text === undefined ? undefined : parseNetDev(text).filter((i) => i.name !== 'lo');
}

export async function collectSandboxStats(
  ctx: RuntimeContext,
  ns: string,
  sb: SandboxRecord,
): Promise<{
  stats: PodSandboxStats;
  sample: CgroupSample | undefined;
  net: InterfaceCounters[] | undefined;
  containers: Array<{ record: ContainerRecord; sample: CgroupSample | undefined }>;
}> {
  const containers = ctx.containers.bySandbox(ns, sb.id);
  const per = await Promise.all(containers.map((c) => collectContainerStats(ctx, ns, c)));
  const samples = per.map((p) => p.sample).filter((s): s is CgroupSample => s !== undefined);
  if (sb.state === 'ready' && sb.pid) {
    const own = await sampleTask(ctx, ns, sb.id);
    if (own) samples.push(own);
  }
  // The sum is as of its newest part: the same shared samples give the same pod sample (and
  // CpuRates its first rate), not a second reading a few milliseconds later.
  const ts = samples.reduce((m, x) => (x.timestamp > m ? x.timestamp : m), 0n) || nowNanos();
  const sample = samples.length ? sumSamples(samples, ts) : undefined;
  const running = containers.filter((c) => c.state === 'running' && c.pid).map((c) => c.pid!);
  const net = sb.state === 'ready' ? await podInterfaces(sb, running) : undefined;
  const linux: NonNullable<MessageInitShape<typeof PodSandboxStatsSchema>['linux']> = { containers: per.map((p) => p.stats) };
  if (sample) {
    Object.assign(linux, cpuAndMemory(sample, ctx.cpuRates.rate(`p/${ns}/${sb.id}`, sample)));
    linux.process = { timestamp: ts, processCount: { value: sample.pids } };
  }
  if (net) {
    const ifs = net.map((i) => ({
      name: i.name,
      rxBytes: { value: i.rxBytes },
      rxErrors: { value: i.rxErrors },
      txBytes: { value: i.txBytes },
      txErrors: { value: i.txErrors },
    }));
    linux.network = { timestamp: nowNanos(), defaultInterface: ifs.find((i) => i.name === 'eth0') ?? ifs[0], interfaces: ifs };
  }
  const stats = create(PodSandboxStatsSchema, {
    attributes: {
      id: sb.id,
      metadata: { name: sb.meta.name, namespace: sb.meta.namespace, uid: sb.meta.uid, attempt: sb.meta.attempt },
      labels: sb.labels,
      annotations: sb.annotations,
    },
    linux,
  });
  return { stats, sample, net, containers: containers.map((record, i) => ({ record, sample: per[i]!.sample })) };
}

export const podSandboxStats =
  (ctx: RuntimeContext): NonNullable<RuntimeHandlers['podSandboxStats']> =>
  async (req, call) => {
    const sb = findSandbox(ctx, call.namespace, req.podSandboxId);
    return { stats: (await collectSandboxStats(ctx, call.namespace, sb)).stats };
  };

export const listPodSandboxStats =
  (ctx: RuntimeContext): NonNullable<RuntimeHandlers['listPodSandboxStats']> =>
  async (req, call) => {
    const f = req.filter;
    const list = ctx.sandboxes.list(call.namespace).filter((s) => (!f?.id || s.id.startsWith(f.id)) && matchesLabels(s.labels, f?.labelSelector));
    const stats = await inTurns(list, async (s) => (await collectSandboxStats(ctx, call.namespace, s)).stats);
    return { stats };
  };

/** RuntimeService/StreamPodSandboxStats: ListPodSandboxStats' stats and filter, in pages. */
export const streamPodSandboxStats = (ctx: RuntimeContext): NonNullable<RuntimeHandlers['streamPodSandboxStats']> => {
  const list = listPodSandboxStats(ctx);
  return async (req, write, call) => {
    const { stats } = await list({ $typeName: 'runtime.v1.ListPodSandboxStatsRequest', filter: req.filter }, call);
    await writePages(stats ?? [], (podSandboxStats) => ({ podSandboxStats }), write, call);
  };
};
