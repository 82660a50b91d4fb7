/**
 * PodSandboxStats / ListPodSandboxStats. A pod's CPU, memory and process count are the sum of
 * its containers' and its sandbox (pause) task's cgroups — that works with or without a pod
 * cgroup_parent. Network counters come from /proc/<pid>/net/dev of the pause or of a running
 * container found in the pod's pinned netns (same nsfs inode), which shows that namespace;
 * with no such process (a pod without pause or running containers), from `nsenter --net`.
 */
import { execFile } from 'node:child_process';
import { closeSync, openSync, readSync, statSync } from 'node:fs';
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

/**
 * The most of a /proc/<pid>/net/dev read (about 8000 interfaces; `nsenter … cat`'s output has
 * the same cap, execFile's maxBuffer). A pod with CAP_NET_ADMIN can make interfaces without
 * number, and this read is synchronous: it must not hold berthd's event loop for long.
 */
export const NET_DEV_MAX = 1024 * 1024;

/** A file's text, at most `max` bytes and cut after its last whole line; undefined when it cannot be read. */
export function readCapped(path: string, max: number): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const scratch = Buffer.allocUnsafe(Math.min(65536, max));
    const chunks: Buffer[] = [];
    let n = 0;
    while (n < max) {
      const got = readSync(fd, scratch, 0, Math.min(scratch.length, max - n), null);
      if (got <= 0) break;
      chunks.push(Buffer.from(scratch.subarray(0, got)));
      n += got;
    }
    let all = Buffer.concat(chunks, n);
    // Full: keep whole lines only.
    if (n >= max) all = all.subarray(0, all.lastIndexOf(0x0a) + 1);
    return all.toString('utf8');
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** The namespace file's identity (st_dev, st_ino); undefined when it is gone or unreadable. */
function nsId(path: string): string | undefined {
  try {
    const st = statSync(path, { throwIfNoEntry: false });
    return st && `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}

/**
 * Counters of the pod's interfaces except loopback; undefined when the netns is unreachable.
 * A pid (the pause's, a container's) is trusted only while it is in the pod's pinned netns,
 * checked before and after the read: a pid that died and was reused (a pause that exited
 * before its record was updated) would otherwise report another namespace's counters (the
 * host's).
 */
export async function podInterfaces(sb: SandboxRecord, containerPids: readonly number[] = []): Promise<InterfaceCounters[] | undefined> {
  // Synchronous reads: /proc files and the netns handle (nsfs) never wait on a disk, and with
  // the promise API each pod of a ListPodSandboxStats cost up to four thread-pool round trips.
  const want = sb.netnsPath ? nsId(sb.netnsPath) : undefined;
  const readIn = (pid: number): string | undefined => {
    if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
    // Without a pinned netns (host network) any process's view is the pod's.
    if (sb.netnsPath && (want === undefined || nsId(`/proc/${pid}/ns/net`) !== want)) return undefined;
    const text = readCapped(`/proc/${pid}/net/dev`, NET_DEV_MAX);
    if (sb.netnsPath && nsId(`/proc/${pid}/ns/net`) !== want) return undefined;
    return text;
  };
  let text: string | undefined;
  if (sb.pid) text = readIn(sb.pid);
  if (text === undefined && sb.netnsPath && want !== undefined) {
    for (const pid of containerPids) {
      text = readIn(pid);
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
