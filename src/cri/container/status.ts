/** RuntimeService/ContainerStatus: the record as CRI status; verbose adds pid, sandbox and runtime spec. */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { toJson } from '@bufbuild/protobuf';
import { ContainerConfigSchema, LinuxContainerResourcesSchema } from '../../api/cri/runtime/v1/api_pb.js';
import { bundlePaths } from '../../runtime/index.js';
import { imageView, criState, nanos } from './convert.js';
import type { ContainerConfig, ContainerStatus } from '../../api/cri/runtime/v1/api_pb.js';
import type { CallContext } from '../server/instrument.js';
import { decodeMessage, findContainer, type RuntimeContext } from '../server/runtime-context.js';
import type { RuntimeHandlers } from '../server/server.js';

interface StoredUser {
  uid: number;
  gid: number;
  additionalGids: number[];
}

interface IdMap {
  inside: number;
  outside: number;
  count: number;
}

function parseIdMap(text: string): IdMap[] {
  return text
    .split('\n')
    .map((l) => l.trim().split(/\s+/).map(Number))
    .filter((v) => v.length === 3 && v.every((n) => Number.isInteger(n) && n >= 0))
    .map(([inside, outside, count]) => ({ inside: inside!, outside: outside!, count: count! }));
}

/** A host id as the container sees it (through its user namespace's map); undefined if unmapped. */
function toInside(id: number, map: IdMap[]): number | undefined {
  for (const m of map) if (id >= m.outside && id < m.outside + m.count) return m.inside + (id - m.outside);
  return undefined;
}

/**
 * The ids the container's init process really runs with (/proc/<pid>/status: real uid and
 * gid, supplementary groups), in the container's user namespace. Undefined when the process
 * is gone or its ids cannot be read.
 */
export async function processUser(pid: number): Promise<StoredUser | undefined> {
  try {
    // Synchronous: /proc files are made by the kernel on read (never wait on a disk), and the
    // promise API cost four thread-pool round trips per file on every ContainerStatus.
    const st = readFileSync(`/proc/${pid}/status`, 'utf8');
    const um = readFileSync(`/proc/${pid}/uid_map`, 'utf8');
    const gm = readFileSync(`/proc/${pid}/gid_map`, 'utf8');
    return idsFromProc(st, um, gm);
  } catch {
    return undefined;
  }
}

/** Pure part of processUser: /proc/<pid>/status, uid_map and gid_map texts as read by berthd. */
export function idsFromProc(status: string, uidMap: string, gidMap: string): StoredUser | undefined {
  const field = (name: string) => new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(status)?.[1]?.trim().split(/\s+/).filter(Boolean).map(Number) ?? [];
  const uids = parseIdMap(uidMap);
  const gids = parseIdMap(gidMap);
  const uid = toInside(field('Uid')[0] ?? NaN, uids);
  const gid = toInside(field('Gid')[0] ?? NaN, gids);
  if (uid === undefined || gid === undefined) return undefined;
  const groups = field('Groups').map((g) => toInside(g, gids));
  if (groups.some((g) => g === undefined)) return undefined;
  return { uid, gid, additionalGids: groups as number[] };
}

async function runtimeSpec(ctx: RuntimeContext, ns: string, id: string): Promise<unknown> {
  try {
    const p = join(bundlePaths(ctx.settings.state, ctx.settings.root, ns, id).dir, 'config.json');
    return JSON.parse(await readFile(p, 'utf8')) as unknown;
  } catch {
    return undefined;
  }
}

/**
 * Decoded ContainerConfigs by container id, kept while the record's config bytes are the same
 * (they never change after create): decoding them was a good part of every ContainerStatus.
 * The decoded messages are shared: read-only.
 */
// Process-wide: an entry is valid only for the exact stored bytes it decoded (checked on every hit), so
// it is the same in any context.
const configCache = new Map<string, { b64: string; config: ContainerConfig }>();
const CONFIG_CACHE_MAX = 8192;

function decodedConfig(id: string, b64: string): ContainerConfig {
  const hit = configCache.get(id);
  if (hit && hit.b64 === b64) return hit.config;
  const config = decodeMessage(ContainerConfigSchema, b64);
  if (configCache.size >= CONFIG_CACHE_MAX) configCache.clear();
  configCache.set(id, { b64, config });
  return config;
}

export const containerStatus =
  (ctx: RuntimeContext): NonNullable<RuntimeHandlers['containerStatus']> =>
  async (req, call) => {
    const ns = call.namespace;
    const c = findContainer(ctx, ns, req.containerId);
    const config = decodedConfig(c.id, c.config);
    const { image, imageRef } = await imageView(ctx, ns, c);
    // What the init process really got while it runs; the ids berth asked for otherwise.
    const live = c.state === 'running' && c.pid ? await processUser(c.pid) : undefined;
    const user = live ?? (c.extra.user as StoredUser | undefined);
    const info: Record<string, string> = {};
    if (req.verbose) {
      info.info = JSON.stringify({
        sandboxID: c.sandboxId,
        pid: c.pid ?? 0,
        removing: false,
        snapshotKey: c.snapshotKey,
        snapshotter: ctx.snapshotter.driver,
        runtimeType: ctx.settings.runtimes[String(c.extra.runtimeHandler)]?.type ?? '',
        runtimeHandler: c.extra.runtimeHandler ?? '',
        config: toJson(ContainerConfigSchema, config),
        runtimeSpec: await runtimeSpec(ctx, ns, c.id),
      });
    }
    return {
      status: {
        id: c.id,
        metadata: { name: c.meta.name, attempt: c.meta.attempt },
        state: criState[c.state],
        createdAt: nanos(c.createdAt),
        startedAt: nanos(c.startedAt),
        finishedAt: nanos(c.finishedAt),
        exitCode: c.exitCode ?? 0,
        image: { image, userSpecifiedImage: c.image },
        imageRef,
        imageId: c.imageId,
        reason: c.reason ?? '',
        message: c.message ?? '',
        labels: c.labels,
        annotations: c.annotations,
        mounts: config.mounts,
        logPath: c.logPath,
        resources: c.resources ? { linux: decodeMessage(LinuxContainerResourcesSchema, c.resources) } : undefined,
        user: user ? { linux: { uid: BigInt(user.uid), gid: BigInt(user.gid), supplementalGroups: user.additionalGids.map((g) => BigInt(g)) } } : undefined,
        stopSignal: config.stopSignal,
      },
      info,
    };
  };

/**
 * The statuses of every container of a pod, as ContainerStatus answers them (containers
 * removed meanwhile are left out): PodSandboxStatus and container events carry them.
 */
export async function podContainerStatuses(ctx: RuntimeContext, sandboxId: string, call: CallContext): Promise<ContainerStatus[]> {
  const statusOf = containerStatus(ctx);
  const out: ContainerStatus[] = [];
  for (const c of ctx.containers.bySandbox(call.namespace, sandboxId)) {
    const r = await statusOf({ containerId: c.id, verbose: false } as Parameters<typeof statusOf>[0], call).catch(() => undefined);
    if (r?.status) out.push(r.status as ContainerStatus);
  }
  return out;
}
