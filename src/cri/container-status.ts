/** RuntimeService/ContainerStatus: the record as CRI status; verbose adds pid, sandbox and runtime spec. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { toJson } from '@bufbuild/protobuf';
import { ContainerConfigSchema, LinuxContainerResourcesSchema } from '../api/cri/runtime/v1/api_pb.js';
import { bundlePaths } from '../runtime/index.js';
import { imageView, criState, nanos } from './container-convert.js';
import type { ContainerStatus } from '../api/cri/runtime/v1/api_pb.js';
import type { CallContext } from './instrument.js';
import { decodeMessage, findContainer, type RuntimeContext } from './runtime-context.js';
import type { RuntimeHandlers } from './server.js';

interface StoredUser {
  uid: number;
  gid: number;
  additionalGids: number[];
}

async function runtimeSpec(ctx: RuntimeContext, ns: string, id: string): Promise<unknown> {
  try {
    const p = join(bundlePaths(ctx.settings.state, ctx.settings.root, ns, id).dir, 'config.json');
    return JSON.parse(await readFile(p, 'utf8')) as unknown;
  } catch {
    return undefined;
  }
}

export const containerStatus =
  (ctx: RuntimeContext): NonNullable<RuntimeHandlers['containerStatus']> =>
  async (req, call) => {
    const ns = call.namespace;
    const c = findContainer(ctx, ns, req.containerId);
    const config = decodeMessage(ContainerConfigSchema, c.config);
    const { image, imageRef } = await imageView(ctx, ns, c);
    const user = c.extra.user as StoredUser | undefined;
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
  for (const c of ctx.containers.list(call.namespace).filter((x) => x.sandboxId === sandboxId)) {
    const r = await statusOf({ containerId: c.id, verbose: false } as Parameters<typeof statusOf>[0], call).catch(() => undefined);
    if (r?.status) out.push(r.status as ContainerStatus);
  }
  return out;
}
