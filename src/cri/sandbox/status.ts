/**
 * RuntimeService/PodSandboxStatus and the record → CRI conversions ListPodSandbox shares.
 * IPs are reported only while the pod's network is up (containerd: none once the netns is
 * closed, none for host network).
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { toJson } from '@bufbuild/protobuf';
import { PodSandboxConfigSchema, PodSandboxState, type PodSandboxConfig, type PodSandboxMetadata } from '../../api/cri/runtime/v1/api_pb.js';
import type { SandboxRecord } from '../../core/metadata/records.js';
import type { MessageInitShape } from '@bufbuild/protobuf';
import type { PodSandboxMetadataSchema } from '../../api/cri/runtime/v1/api_pb.js';
import { nowNanos, type RuntimeContext } from '../server/runtime-context.js';
import type { RuntimeHandlers } from '../server/server.js';
import { podContainerStatuses } from '../container/status.js';
import { sandboxConfigOf } from './common.js';
import { findVisibleSandbox } from './stop.js';

export function criState(r: SandboxRecord): PodSandboxState {
  return r.state === 'ready' ? PodSandboxState.SANDBOX_READY : PodSandboxState.SANDBOX_NOTREADY;
}

export function criMetadata(r: SandboxRecord): MessageInitShape<typeof PodSandboxMetadataSchema> & Partial<PodSandboxMetadata> {
  return { name: r.meta.name, namespace: r.meta.namespace, uid: r.meta.uid, attempt: r.meta.attempt };
}

/** The pod IPs while the network is up: [primary, ...additional]. */
export function liveIps(r: SandboxRecord): string[] {
  if (r.hostNetwork || r.networkDown) return [];
  return r.ips.map((ip) => ip.split('/')[0]!);
}

async function readSpec(ctx: RuntimeContext, ns: string, id: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(join(ctx.settings.state, 'tasks', ns, id, 'config.json'), 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * Decoded PodSandboxConfigs by sandbox id, kept while the record's config bytes are the same
 * (they never change after RunPodSandbox): kubelet asks PodSandboxStatus of every pod, over and
 * over. The decoded messages are shared: read-only. An entry holds the stored base64 and the
 * decoded message (a pod's annotations alone may be 256 KiB): RemovePodSandbox drops its
 * pod's (forgetSandboxConfig), so removed pods are not kept until the cap is reached.
 */
// Process-wide: an entry is valid only for the exact stored bytes it decoded (checked on every hit), so
// it is the same in any context.
const configCache = new Map<string, { b64: string; config: PodSandboxConfig }>();
const CONFIG_CACHE_MAX = 1024;

function decodedConfig(r: SandboxRecord): PodSandboxConfig {
  const hit = configCache.get(r.id);
  if (hit && hit.b64 === r.config) return hit.config;
  const config = sandboxConfigOf(r);
  if (configCache.size >= CONFIG_CACHE_MAX) configCache.clear();
  configCache.set(r.id, { b64: r.config, config });
  return config;
}

/** Drops the decoded config of a removed pod. */
export function forgetSandboxConfig(id: string): void {
  configCache.delete(id);
}

/** Whether the decoded config of `id` is kept: for tests. */
export function sandboxConfigKept(id: string): boolean {
  return configCache.has(id);
}

export const podSandboxStatus =
  (ctx: RuntimeContext): NonNullable<RuntimeHandlers['podSandboxStatus']> =>
  async (req, call) => {
    const ns = call.namespace;
    const r = findVisibleSandbox(ctx, ns, req.podSandboxId);
    const config = decodedConfig(r);
    const [ip, ...additional] = liveIps(r);
    const info: Record<string, string> = {};
    if (req.verbose) {
      const x = r;
      const handler = ctx.settings.runtimes[r.runtimeHandler];
      info.info = JSON.stringify({
        pid: r.pid ?? 0,
        processStatus: r.state === 'ready' ? 'running' : 'stopped',
        // No pause unless the pod shares a pid namespace; the pinned handles hold the pod.
        pause: x.pause,
        pinnedNamespaces: x.pins ?? {},
        netNamespace: x.hostNetwork ? '' : (r.netnsPath ?? ''),
        netNamespaceClosed: Boolean(x.hostNetwork || x.networkDown),
        // Undos a failed RunPodSandbox left for StopPodSandbox/RemovePodSandbox.
        leftover: x.leftover ?? [],
        image: x.imageRef ?? '',
        imageId: x.image ?? '',
        snapshotKey: x.snapshotKey ?? r.id,
        snapshotter: ctx.snapshotter.driver,
        runtimeHandler: r.runtimeHandler,
        runtimeType: handler?.type ?? '',
        sandboxDir: r.sandboxDir,
        cgroupParent: r.cgroupParent,
        cniResult: r.cni?.result,
        config: toJson(PodSandboxConfigSchema, config),
        runtimeSpec: await readSpec(ctx, ns, r.id),
      });
    }
    return {
      status: {
        id: r.id,
        metadata: criMetadata(r),
        state: criState(r),
        createdAt: BigInt(r.createdAt),
        network: { ip: ip ?? '', additionalIps: additional.map((a) => ({ ip: a })) },
        linux: { namespaces: { options: config.linux?.securityContext?.namespaceOptions } },
        labels: r.labels,
        annotations: r.annotations,
        runtimeHandler: r.runtimeHandler,
      },
      info,
      containersStatuses: await podContainerStatuses(ctx, r.id, call),
      timestamp: nowNanos(),
    };
  };
