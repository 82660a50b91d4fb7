/**
 * ContainerStats / ListContainerStats, and the cgroup sampling shared with the pod stats and
 * the CRI metrics: one normalised sample per task from the shim's Stats (cgroup v1 or v2
 * metrics, whichever hierarchy the container lives in), a CPU rate from the previous sample,
 * and the writable layer's usage from the snapshotter.
 */
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { ContainerStatsSchema, type ContainerStats, type ContainerStatsFilter } from '../../api/cri/runtime/v1/api_pb.js';
import type { ContainerRecord } from '../../core/metadata/records.js';
import type { TaskMetrics } from '../../runtime/index.js';
import { findContainer, nowNanos, type RuntimeContext } from '../server/runtime-context.js';
import { writePages } from '../server/stream-pages.js';
import { setImmediate as turn } from 'node:timers/promises';
import type { RuntimeHandlers } from '../server/server.js';

/** One cgroup reading, hierarchy-independent. Bytes, nanoseconds, counts. */
export interface CgroupSample {
  /** Unix nanoseconds of the reading. */
  timestamp: bigint;
  cpuNanos: bigint;
  memUsage: bigint;
  workingSet: bigint;
  rss: bigint;
  pageFaults: bigint;
  majorFaults: bigint;
  /** Memory limit; undefined when unlimited. */
  limit: bigint | undefined;
  pids: bigint;
}

/** Limits at or above this are "no limit" (v1 reports PAGE_COUNTER_MAX pages as bytes). */
const UNLIMITED = 1n << 62n;

export function sampleFromMetrics(m: TaskMetrics, timestamp: bigint): CgroupSample {
  if (m.cgroup === 'v1') {
    const x = m.metrics;
    const usage = x.memory?.usage?.usage ?? 0n;
    // Hierarchical counters first (they include child cgroups), else the local ones.
    const inactive = x.memory?.totalInactiveFile || x.memory?.inactiveFile || 0n;
    const limit = x.memory?.usage?.limit ?? 0n;
    return {
      timestamp,
      cpuNanos: x.cpu?.usage?.total ?? 0n,
      memUsage: usage,
      workingSet: usage > inactive ? usage - inactive : 0n,
      rss: x.memory?.totalRss || x.memory?.rss || 0n,
      pageFaults: x.memory?.totalPgFault || x.memory?.pgFault || 0n,
      majorFaults: x.memory?.totalPgMajFault || x.memory?.pgMajFault || 0n,
      limit: limit > 0n && limit < UNLIMITED ? limit : undefined,
      pids: x.pids?.current ?? 0n,
    };
  }
  const x = m.metrics;
  const usage = x.memory?.usage ?? 0n;
  const inactive = x.memory?.inactiveFile ?? 0n;
  const limit = x.memory?.usageLimit ?? 0n;
  return {
    timestamp,
    cpuNanos: (x.cpu?.usageUsec ?? 0n) * 1000n,
    memUsage: usage,
    workingSet: usage > inactive ? usage - inactive : 0n,
    rss: x.memory?.anon ?? 0n,
    pageFaults: x.memory?.pgfault ?? 0n,
    majorFaults: x.memory?.pgmajfault ?? 0n,
    limit: limit > 0n && limit < UNLIMITED ? limit : undefined,
    pids: x.pids?.current ?? 0n,
  };
}

/** Sum of samples (a pod = its containers plus the sandbox's own process). */
export function sumSamples(list: CgroupSample[], timestamp: bigint): CgroupSample {
  const s: CgroupSample = { timestamp, cpuNanos: 0n, memUsage: 0n, workingSet: 0n, rss: 0n, pageFaults: 0n, majorFaults: 0n, limit: undefined, pids: 0n };
  for (const x of list) {
    s.cpuNanos += x.cpuNanos;
    s.memUsage += x.memUsage;
    s.workingSet += x.workingSet;
    s.rss += x.rss;
    s.pageFaults += x.pageFaults;
    s.majorFaults += x.majorFaults;
    s.pids += x.pids;
  }
  return s;
}

/**
 * CPU rate (nano-cores) between consecutive samples of the same key. The same sample seen again
 * (shared by TaskSamples between calls made at once) gets the rate it got the first time, not
 * none. Bounded: entries of objects that are no longer sampled are dropped after ten minutes.
 */
export class CpuRates {
  private readonly prev = new Map<string, { cpu: bigint; ts: bigint; rate: bigint | undefined }>();
  rate(key: string, s: CgroupSample): bigint | undefined {
    const p = this.prev.get(key);
    if (p && s.timestamp === p.ts && s.cpuNanos === p.cpu) return p.rate;
    const rate = !p || s.timestamp <= p.ts || s.cpuNanos < p.cpu ? undefined : ((s.cpuNanos - p.cpu) * 1_000_000_000n) / (s.timestamp - p.ts);
    this.prev.set(key, { cpu: s.cpuNanos, ts: s.timestamp, rate });
    if (this.prev.size > 4096) this.prune(s.timestamp);
    return rate;
  }
  private prune(now: bigint): void {
    for (const [k, v] of this.prev) if (now - v.ts > 600_000_000_000n) this.prev.delete(k);
  }
}

/**
 * Task samples shared by the calls that ask within `maxAgeMs` of each other. kubelet's stats
 * provider asks ListContainerStats and ListPodSandboxStats back to back, and a pod's stats
 * include its containers': without sharing, every running task cost two shim Stats calls per
 * round, and the second call's CPU rate was taken over the few milliseconds between the two.
 * A sample in flight is shared too. Bounded like CpuRates.
 */
export class TaskSamples {
  private readonly recent = new Map<string, { at: number; sample: Promise<CgroupSample | undefined> }>();
  constructor(
    readonly maxAgeMs = 1000,
    private readonly now: () => number = () => performance.now(),
  ) {}
  get(key: string, take: () => Promise<CgroupSample | undefined>): Promise<CgroupSample | undefined> {
    const t = this.now();
    const r = this.recent.get(key);
    if (r && t - r.at <= this.maxAgeMs) return r.sample;
    const sample = take();
    this.recent.set(key, { at: t, sample });
    if (this.recent.size > 4096) for (const [k, v] of this.recent) if (t - v.at > this.maxAgeMs) this.recent.delete(k);
    return sample;
  }
}

/** A task's sample, or undefined when it has no live task (created-only, exited, shim gone); shared within ctx.taskSamples' window. */
export function sampleTask(ctx: RuntimeContext, ns: string, taskId: string): Promise<CgroupSample | undefined> {
  return ctx.taskSamples.get(`${ns}/${taskId}`, async () => {
    try {
      return sampleFromMetrics(await ctx.tasks.stats(ns, taskId, { summary: true }), nowNanos());
    } catch (err) {
      ctx.log.debug('no stats for task', { id: taskId, error: err });
      return undefined;
    }
  });
}

const u64 = (value: bigint): { value: bigint } => ({ value: value < 0n ? 0n : value });

export function cpuAndMemory(s: CgroupSample, rate: bigint | undefined): Pick<MessageInitShape<typeof ContainerStatsSchema>, 'cpu' | 'memory'> {
  return {
    cpu: { timestamp: s.timestamp, usageCoreNanoSeconds: u64(s.cpuNanos), usageNanoCores: rate === undefined ? undefined : u64(rate) },
    memory: {
      timestamp: s.timestamp,
      workingSetBytes: u64(s.workingSet),
      availableBytes: s.limit === undefined ? undefined : u64(s.limit - s.workingSet),
      usageBytes: u64(s.memUsage),
      rssBytes: u64(s.rss),
      pageFaults: u64(s.pageFaults),
      majorPageFaults: u64(s.majorFaults),
    },
  };
}

/** Stats of one container plus its raw sample (pod stats sum the samples). */
export async function collectContainerStats(
  ctx: RuntimeContext,
  ns: string,
  c: ContainerRecord,
): Promise<{ stats: ContainerStats; sample: CgroupSample | undefined }> {
  const sample = c.state === 'running' ? await sampleTask(ctx, ns, c.id) : undefined;
  const init: MessageInitShape<typeof ContainerStatsSchema> = {
    attributes: { id: c.id, metadata: { name: c.meta.name, attempt: c.meta.attempt }, labels: c.labels, annotations: c.annotations },
  };
  if (sample) Object.assign(init, cpuAndMemory(sample, ctx.cpuRates.rate(`c/${ns}/${c.id}`, sample)));
  if (c.snapshotKey) {
    try {
      const u = await ctx.snapshotter.usage(c.snapshotKey);
      init.writableLayer = {
        timestamp: nowNanos(),
        fsId: { mountpoint: ctx.snapshotter.root },
        usedBytes: u64(BigInt(u.size)),
        inodesUsed: u64(BigInt(u.inodes)),
      };
    } catch (err) {
      ctx.log.debug('no writable layer usage', { id: c.id, error: err });
    }
  }
  return { stats: create(ContainerStatsSchema, init), sample };
}

/**
 * `fn` over `items`, all in flight together, with an event-loop turn before each one starts:
 * the synchronous part of each (cgroup and /proc reads, building its message) runs in its own
 * turn, so calls arriving meanwhile are served between pods instead of after the whole list
 * (a 100-pod ListPodSandboxStats is ~100 ms of such work, which kubelet's relist met at random).
 */
export async function inTurns<T, R>(items: readonly T[], fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: Promise<R>[] = [];
  for (const item of items) {
    await turn();
    const p = fn(item);
    p.catch(() => undefined); // awaited below; a rejection before then is not unhandled
    out.push(p);
  }
  return Promise.all(out);
}

export function matchesLabels(labels: Record<string, string>, selector: Record<string, string> | undefined): boolean {
  return Object.entries(selector ?? {}).every(([k, v]) => labels[k] === v);
}

export function filterContainers(list: ContainerRecord[], f: ContainerStatsFilter | undefined): ContainerRecord[] {
  if (!f) return list;
  return list.filter(
    (c) => (!f.id || c.id.startsWith(f.id)) && (!f.podSandboxId || c.sandboxId.startsWith(f.podSandboxId)) && matchesLabels(c.labels, f.labelSelector),
  );
}

export const containerStats =
  (ctx: RuntimeContext): NonNullable<RuntimeHandlers['containerStats']> =>
  async (req, call) => {
    const c = findContainer(ctx, call.namespace, req.containerId);
    return { stats: (await collectContainerStats(ctx, call.namespace, c)).stats };
  };

export const listContainerStats =
  (ctx: RuntimeContext): NonNullable<RuntimeHandlers['listContainerStats']> =>
  async (req, call) => {
    const list = filterContainers(ctx.containers.list(call.namespace), req.filter);
    const stats = await inTurns(list, async (c) => (await collectContainerStats(ctx, call.namespace, c)).stats);
    return { stats };
  };

/** RuntimeService/StreamContainerStats: ListContainerStats' stats and filter, in pages. */
export const streamContainerStats = (ctx: RuntimeContext): NonNullable<RuntimeHandlers['streamContainerStats']> => {
  const list = listContainerStats(ctx);
  return async (req, write, call) => {
    const { stats } = await list({ $typeName: 'runtime.v1.ListContainerStatsRequest', filter: req.filter }, call);
    await writePages(stats ?? [], (containerStats) => ({ containerStats }), write, call);
  };
};
