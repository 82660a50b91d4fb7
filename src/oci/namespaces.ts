/**
 * Linux namespaces of a pod: what RunPodSandbox pins, whether a pause container runs, and
 * the namespaces the pause and the app containers join.
 */
import { create } from '@bufbuild/protobuf';
import { NamespaceMode, NamespaceOptionSchema, type IDMapping, type NamespaceOption } from '../api/cri/runtime/v1/api_pb.js';
import type { LinuxIDMapping, LinuxNamespace, LinuxNamespaceType } from './spec.js';
import { invalid, MAX_UINT32 } from './values.js';

export function nsPath(pid: number, kind: 'net' | 'ipc' | 'uts' | 'pid' | 'user'): string {
  return `/proc/${pid}/ns/${kind}`;
}

function checkPid(pid: number | undefined, field: string): number {
  if (pid === undefined || !Number.isInteger(pid) || pid <= 0) throw invalid(field, `invalid process id ${String(pid)}`);
  return pid;
}

/**
 * The one mapping of a pod user namespace. kubelet sends exactly one range per kind, starting
 * at container id 0 (pkg/kubelet/userns: {container_id 0, host_id N×65536, length 65536·k});
 * containerd accepts one line only too ("only one mapping line supported"). Several ranges, or
 * a range that leaves container id 0 unmapped (no root inside: runc could not even own the
 * bundle), are refused naming the field.
 */
function mappings(list: readonly IDMapping[], field: string): LinuxIDMapping[] {
  if (list.length === 0) throw invalid(field, 'at least one mapping is required with a pod user namespace', 'oci.invalid_userns');
  if (list.length > 1) throw invalid(field, `${list.length} mappings given, a pod user namespace takes exactly one (as kubelet sends)`, 'oci.invalid_userns');
  return list.map((m, i) => {
    const f = `${field}[${i}]`;
    for (const [k, v] of [
      ['host_id', m.hostId],
      ['container_id', m.containerId],
      ['length', m.length],
    ] as const) {
      if (!Number.isInteger(v) || v < 0 || v > MAX_UINT32) throw invalid(`${f}.${k}`, `${v} is not an unsigned 32-bit value`, 'oci.invalid_userns');
    }
    if (m.length === 0) throw invalid(`${f}.length`, 'must be positive', 'oci.invalid_userns');
    if (m.hostId + m.length > MAX_UINT32 + 1 || m.containerId + m.length > MAX_UINT32 + 1) {
      throw invalid(f, 'mapping runs past the 32-bit id space', 'oci.invalid_userns');
    }
    if (m.containerId !== 0)
      throw invalid(
        `${f}.container_id`,
        `${m.containerId}: container id 0 (root) is left unmapped; the mapping must start at container id 0`,
        'oci.invalid_userns',
      );
    return { containerID: m.containerId, hostID: m.hostId, size: m.length };
  });
}

export interface UserNamespacePlan {
  uidMappings: LinuxIDMapping[];
  gidMappings: LinuxIDMapping[];
}

/**
 * User namespace mappings for POD mode, undefined for NODE / unset (the host's user
 * namespace). NODE with mappings, CONTAINER and TARGET are refused as containerd does: kubelet
 * sends POD with mappings (hostUsers: false) or NODE without (hostUsers: true).
 */
export function userNamespacePlan(opts: NamespaceOption | undefined, field: string): UserNamespacePlan | undefined {
  const u = opts?.usernsOptions;
  if (u === undefined) return undefined;
  if (u.mode === NamespaceMode.NODE) {
    if (u.uids.length > 0 || u.gids.length > 0) {
      throw invalid(
        `${field}.userns_options`,
        `mode NODE (the host's user namespace) takes no mappings, got ${u.uids.length} uid and ${u.gids.length} gid mapping(s)`,
        'oci.invalid_userns',
      );
    }
    return undefined;
  }
  if (u.mode !== NamespaceMode.POD)
    throw invalid(`${field}.userns_options.mode`, `unsupported mode ${NamespaceMode[u.mode] ?? u.mode} (only POD and NODE)`, 'oci.invalid_userns');
  return { uidMappings: mappings(u.uids, `${field}.userns_options.uids`), gidMappings: mappings(u.gids, `${field}.userns_options.gids`) };
}

const ns = (type: LinuxNamespaceType, path?: string): LinuxNamespace => (path === undefined ? { type } : { type, path });

/**
 * What a pod needs at RunPodSandbox: which namespaces berthd pins (network + UTS unless host
 * network, IPC unless host IPC, a user namespace owning them for userns mode POD), and
 * whether a pause container runs — only to hold a pid namespace the pod's containers share.
 */
export interface PodNamespacePlan {
  pin: { net: boolean; ipc: boolean; uts: boolean; userns?: UserNamespacePlan };
  pause: boolean;
}

export function podNamespacePlan(opts: NamespaceOption | undefined, field: string): PodNamespacePlan {
  const hostNet = opts?.network === NamespaceMode.NODE;
  const userns = userNamespacePlan(opts, field);
  return {
    pin: { net: !hostNet, uts: !hostNet, ipc: opts?.ipc !== NamespaceMode.NODE, ...(userns ? { userns } : {}) },
    pause: (opts?.pid ?? NamespaceMode.POD) === NamespaceMode.POD,
  };
}

/** Paths of a pod's namespaces that its containers (and its pause) join. */
export interface PodNamespacePaths {
  net?: string;
  ipc?: string;
  uts?: string;
  user?: string;
  /** The pause container's pid namespace (pid mode POD only). */
  pid?: string;
}

/** A pre-pinning sandbox's namespaces: everything through its pause process. */
export function pauseNamespacePaths(pid: number): PodNamespacePaths {
  checkPid(pid, 'sandbox pid');
  return { net: nsPath(pid, 'net'), ipc: nsPath(pid, 'ipc'), uts: nsPath(pid, 'uts'), user: nsPath(pid, 'user'), pid: nsPath(pid, 'pid') };
}

export interface SandboxNamespaceInputs {
  options: NamespaceOption | undefined;
  /** The pod's network namespace (bind-mounted netns file); a new one when absent. */
  netnsPath?: string;
  /** The pod's pinned namespaces: joined by path instead of being created. */
  pins?: Omit<PodNamespacePaths, 'pid'>;
  field: string;
}

/**
 * Namespaces of the pause container: its own pid and mount namespaces; the pod's pinned
 * network, UTS, IPC and user namespaces by path (new ones when not pinned, the host's where
 * NODE is asked for).
 */
export function sandboxNamespaces(inp: SandboxNamespaceInputs): { namespaces: LinuxNamespace[]; userns?: UserNamespacePlan } {
  const o = inp.options;
  const p = inp.pins ?? {};
  const out: LinuxNamespace[] = [];
  if (o?.pid !== NamespaceMode.NODE) out.push(ns('pid'));
  if (o?.ipc !== NamespaceMode.NODE) out.push(ns('ipc', p.ipc));
  if (o?.network !== NamespaceMode.NODE) {
    out.push(ns('uts', p.uts));
    out.push(ns('network', p.net ?? inp.netnsPath));
  }
  out.push(ns('mount'));
  const userns = userNamespacePlan(o, inp.field);
  if (userns) out.push(ns('user', p.user));
  return userns ? { namespaces: out, userns } : { namespaces: out };
}

/**
 * A container's namespace options as they apply in its pod: where the container leaves a
 * namespace at POD (the default) and the pod uses the host's (NODE), the container is in the
 * host's too, as containerd does (it joins the pod's, which is the host's). kubelet sends the
 * pod's modes; crictl and CRI conformance tests often send none for the container.
 */
export function effectiveNamespaceOptions(container: NamespaceOption | undefined, pod: NamespaceOption | undefined): NamespaceOption | undefined {
  if (!pod) return container;
  const follow = (c: NamespaceMode | undefined, p: NamespaceMode): NamespaceMode | undefined =>
    (c ?? NamespaceMode.POD) === NamespaceMode.POD && p === NamespaceMode.NODE ? NamespaceMode.NODE : c;
  const network = follow(container?.network, pod.network);
  const ipc = follow(container?.ipc, pod.ipc);
  const pid = follow(container?.pid, pod.pid);
  if (network === container?.network && ipc === container?.ipc && pid === container?.pid) return container;
  return {
    ...(container ?? create(NamespaceOptionSchema)),
    network: network ?? NamespaceMode.POD,
    ipc: ipc ?? NamespaceMode.POD,
    pid: pid ?? NamespaceMode.POD,
  };
}

export interface ContainerNamespaceInputs {
  options: NamespaceOption | undefined;
  /** The pod's namespaces to join (pinned paths, plus the pause's pid namespace). */
  pod?: PodNamespacePaths;
  /** Legacy: the pause pid, when `pod` is not given (every namespace through /proc/<pid>/ns). */
  sandboxPid?: number;
  /** The pid of the target container's init for TARGET pid mode. */
  targetPid?: number;
  /** A private cgroup namespace (cgroup v2, not privileged). */
  cgroupNamespace: boolean;
  field: string;
}

function joinPath(path: string | undefined, what: string, field: string): string {
  if (!path) throw invalid(field, `the pod has no ${what} namespace to join`, 'oci.invalid_namespace');
  return path;
}

/**
 * Namespaces of an app container: joins the pod's namespaces by path, except NODE (host:
 * omitted), CONTAINER (new) and TARGET (another container's pid namespace).
 */
export function containerNamespaces(inp: ContainerNamespaceInputs): { namespaces: LinuxNamespace[]; userns?: UserNamespacePlan } {
  const o = inp.options;
  const f = `${inp.field}.namespace_options`;
  const pod = inp.pod ?? pauseNamespacePaths(checkPid(inp.sandboxPid, 'sandbox pid'));
  const out: LinuxNamespace[] = [ns('mount')];

  switch (o?.network ?? NamespaceMode.POD) {
    case NamespaceMode.POD:
      out.push(ns('network', joinPath(pod.net, 'network', `${f}.network`)));
      out.push(ns('uts', joinPath(pod.uts, 'UTS', `${f}.network`)));
      break;
    case NamespaceMode.NODE:
      // Host network: the host's network and UTS namespaces, so nothing to join.
      break;
    default:
      throw invalid(`${f}.network`, `unsupported mode ${NamespaceMode[o!.network] ?? o!.network}`, 'oci.invalid_namespace');
  }

  switch (o?.ipc ?? NamespaceMode.POD) {
    case NamespaceMode.POD:
      out.push(ns('ipc', joinPath(pod.ipc, 'IPC', `${f}.ipc`)));
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
      // A pod that does not share its pid namespace has no pause to join (containerd would
      // put such a container in the pause's private pid namespace): it gets a new one.
      out.push(pod.pid ? ns('pid', pod.pid) : ns('pid'));
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

  // runc 1.1 wants the mappings in the spec even when it joins the user namespace by path.
  const userns = userNamespacePlan(o, f);
  if (userns) out.push(ns('user', joinPath(pod.user, 'user', `${f}.userns_options`)));
  if (inp.cgroupNamespace) out.push(ns('cgroup'));
  return userns ? { namespaces: out, userns } : { namespaces: out };
}
