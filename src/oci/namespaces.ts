/**
 * Linux namespaces of the pause container and of the containers that join it.
 */
import { NamespaceMode, type IDMapping, type NamespaceOption } from '../api/cri/runtime/v1/api_pb.js';
import type { LinuxIDMapping, LinuxNamespace, LinuxNamespaceType } from './spec.js';
import { invalid, MAX_UINT32 } from './values.js';

export function nsPath(pid: number, kind: 'net' | 'ipc' | 'uts' | 'pid' | 'user'): string {
  return `/proc/${pid}/ns/${kind}`;
}

function checkPid(pid: number | undefined, field: string): number {
  if (pid === undefined || !Number.isInteger(pid) || pid <= 0) throw invalid(field, `invalid process id ${String(pid)}`);
  return pid;
}

function mappings(list: readonly IDMapping[], field: string): LinuxIDMapping[] {
  if (list.length === 0) throw invalid(field, 'at least one mapping is required with a pod user namespace', 'oci.invalid_userns');
  return list.map((m, i) => {
    const f = `${field}[${i}]`;
    for (const [k, v] of [['host_id', m.hostId], ['container_id', m.containerId], ['length', m.length]] as const) {
      if (!Number.isInteger(v) || v < 0 || v > MAX_UINT32) throw invalid(`${f}.${k}`, `${v} is not an unsigned 32-bit value`, 'oci.invalid_userns');
    }
    if (m.length === 0) throw invalid(`${f}.length`, 'must be positive', 'oci.invalid_userns');
    if (m.hostId + m.length > MAX_UINT32 + 1 || m.containerId + m.length > MAX_UINT32 + 1) {
      throw invalid(f, 'mapping runs past the 32-bit id space', 'oci.invalid_userns');
    }
    return { containerID: m.containerId, hostID: m.hostId, size: m.length };
  });
}

export interface UserNamespacePlan {
  uidMappings: LinuxIDMapping[];
  gidMappings: LinuxIDMapping[];
}

/** User namespace mappings for POD mode, undefined for NODE / unset. */
export function userNamespacePlan(opts: NamespaceOption | undefined, field: string): UserNamespacePlan | undefined {
  const u = opts?.usernsOptions;
  if (u === undefined || u.mode === NamespaceMode.NODE) return undefined;
  if (u.mode !== NamespaceMode.POD) throw invalid(`${field}.userns_options.mode`, `unsupported mode ${NamespaceMode[u.mode] ?? u.mode}`, 'oci.invalid_userns');
  return { uidMappings: mappings(u.uids, `${field}.userns_options.uids`), gidMappings: mappings(u.gids, `${field}.userns_options.gids`) };
}

const ns = (type: LinuxNamespaceType, path?: string): LinuxNamespace => (path === undefined ? { type } : { type, path });

export interface SandboxNamespaceInputs {
  options: NamespaceOption | undefined;
  /** The pod's network namespace (bind-mounted netns file); a new one when absent. */
  netnsPath?: string;
  field: string;
}

/** Namespaces of the pause container: new ones, except the host's where NODE is asked for. */
export function sandboxNamespaces(inp: SandboxNamespaceInputs): { namespaces: LinuxNamespace[]; userns?: UserNamespacePlan } {
  const o = inp.options;
  const out: LinuxNamespace[] = [];
  if (o?.pid !== NamespaceMode.NODE) out.push(ns('pid'));
  if (o?.ipc !== NamespaceMode.NODE) out.push(ns('ipc'));
  if (o?.network !== NamespaceMode.NODE) {
    out.push(ns('uts'));
    out.push(ns('network', inp.netnsPath));
  }
  out.push(ns('mount'));
  const userns = userNamespacePlan(o, inp.field);
  if (userns) out.push(ns('user'));
  return userns ? { namespaces: out, userns } : { namespaces: out };
}

export interface ContainerNamespaceInputs {
  options: NamespaceOption | undefined;
  sandboxPid: number;
  /** The pid of the target container's init for TARGET pid mode. */
  targetPid?: number;
  /** A private cgroup namespace (cgroup v2, not privileged). */
  cgroupNamespace: boolean;
  field: string;
}

/**
 * Namespaces of an app container: joins the pause container's namespaces through
 * /proc/<pid>/ns/*, except NODE (host: omitted), CONTAINER (new) and TARGET (another
 * container's pid namespace).
 */
export function containerNamespaces(inp: ContainerNamespaceInputs): { namespaces: LinuxNamespace[]; userns?: UserNamespacePlan } {
  const o = inp.options;
  const f = `${inp.field}.namespace_options`;
  const pid = checkPid(inp.sandboxPid, 'sandbox pid');
  const out: LinuxNamespace[] = [ns('mount')];

  switch (o?.network ?? NamespaceMode.POD) {
    case NamespaceMode.POD:
      out.push(ns('network', nsPath(pid, 'net')));
      out.push(ns('uts', nsPath(pid, 'uts')));
      break;
    case NamespaceMode.NODE:
      // Host network: the host's network and UTS namespaces, so nothing to join.
      break;
    default:
      throw invalid(`${f}.network`, `unsupported mode ${NamespaceMode[o!.network] ?? o!.network}`, 'oci.invalid_namespace');
  }

  switch (o?.ipc ?? NamespaceMode.POD) {
    case NamespaceMode.POD:
      out.push(ns('ipc', nsPath(pid, 'ipc')));
      break;
    case NamespaceMode.CONTAINER:
      out.push(ns('ipc'));
      break;
    case NamespaceMode.NODE:
      break;
    default:
      throw invalid(`${f}.ipc`, `unsupported mode ${NamespaceMode[o!.ipc] ?? o!.ipc}`, 'oci.invalid_namespace');
  }

  switch (o?.pid ?? NamespaceMode.POD) {
    case NamespaceMode.POD:
      out.push(ns('pid', nsPath(pid, 'pid')));
      break;
    case NamespaceMode.CONTAINER:
      out.push(ns('pid'));
      break;
    case NamespaceMode.NODE:
      break;
    case NamespaceMode.TARGET: {
      if (!o?.targetId) throw invalid(`${f}.target_id`, 'required with pid mode TARGET', 'oci.invalid_namespace');
      out.push(ns('pid', nsPath(checkPid(inp.targetPid, `${f}.target_id (pid of ${o.targetId})`), 'pid')));
      break;
    }
    default:
      throw invalid(`${f}.pid`, `unsupported mode ${NamespaceMode[o!.pid] ?? o!.pid}`, 'oci.invalid_namespace');
  }

  const userns = userNamespacePlan(o, f);
  if (userns) out.push(ns('user', nsPath(pid, 'user')));
  if (inp.cgroupNamespace) out.push(ns('cgroup'));
  return userns ? { namespaces: out, userns } : { namespaces: out };
}
