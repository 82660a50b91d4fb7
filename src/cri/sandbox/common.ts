/** Small facts about pod sandboxes shared by the sandbox handlers, recovery and events. */
import { NamespaceMode, PodSandboxConfigSchema, type PodSandboxConfig } from '../../api/cri/runtime/v1/api_pb.js';
import type { SandboxRecord } from '../../core/metadata/records.js';
import { nsPath, pauseNamespacePaths, type PodNamespacePaths } from '../../oci/namespaces.js';
import { decodeMessage } from '../server/runtime-context.js';

export function sandboxConfigOf(r: SandboxRecord): PodSandboxConfig {
  return decodeMessage(PodSandboxConfigSchema, r.config);
}

export function isHostNetwork(c: PodSandboxConfig): boolean {
  return c.linux?.securityContext?.namespaceOptions?.network === NamespaceMode.NODE;
}

export function isHostIpc(c: PodSandboxConfig): boolean {
  return c.linux?.securityContext?.namespaceOptions?.ipc === NamespaceMode.NODE;
}

/** containerd's sandbox name: k8s_POD_<name>_<namespace>_<uid>_<attempt>. */
export function sandboxName(m: { name: string; namespace: string; uid: string; attempt: number }): string {
  return ['k8s', 'POD', m.name, m.namespace, m.uid, String(m.attempt)].join('_');
}

/** True for records RunPodSandbox is still building (invisible to List/Status/Stop). */
export function isCreating(r: SandboxRecord): boolean {
  return r.state === 'creating';
}

/** True when the pod has (or had) a pause container. */
export function hasPause(r: SandboxRecord): boolean {
  return r.pause;
}

/**
 * The namespaces a container of this pod joins: the pinned handles, plus the pause's pid
 * namespace while it runs; for an older record, everything through the pause's /proc entry.
 */
export function podNamespacePathsOf(r: SandboxRecord): PodNamespacePaths {
  const pins = r.pins;
  if (!pins) return pauseNamespacePaths(r.pid ?? 0);
  return { ...pins, ...(r.pid ? { pid: nsPath(r.pid, 'pid') } : {}) };
}

/** Longest metadata name, namespace or uid of a pod or container (a DNS subdomain is at most 253). */
export const MAX_META_LENGTH = 253;
