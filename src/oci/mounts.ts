/**
 * Container mounts: the kernel filesystems, the pod's shared files (/etc/hostname,
 * /etc/hosts, /etc/resolv.conf, /dev/shm), image volumes and the CRI bind mounts, merged and
 * ordered the way containerd's CRI plugin does.
 *
 * Host paths arrive already resolved (symlinks followed once, by the caller); what is given
 * is what gets mounted. Mount destinations are resolved inside the rootfs by runc.
 */
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { MountPropagation, type Mount as CriMount } from '../api/cri/runtime/v1/api_pb.js';
import { cgroupMount, defaultMounts } from './defaults.js';
import type { Mount } from './spec.js';
import { absPath, invalid, pathDepth } from './values.js';

/** A bind mount request: a CRI mount, or one berth adds (sandbox files, image volumes). */
export interface BindRequest {
  containerPath: string;
  hostPath: string;
  readonly: boolean;
  propagation: MountPropagation;
  /** Read-only including every submount (runc's `rro`, mount_setattr AT_RECURSIVE). */
  recursiveReadOnly?: boolean;
  /** Extra flags of the bind (Mount.mount_options; image volumes): a subset of MOUNT_OPTIONS. */
  options?: string[];
}

/** What Mount.mount_options may ask for (cri-api: "noexec, nodev, nosuid"). */
export const MOUNT_OPTIONS: readonly string[] = ['noexec', 'nodev', 'nosuid'];

/**
 * Host mount propagation lookup for BIDIRECTIONAL / HOST_TO_CONTAINER mounts (reads
 * /proc/self/mountinfo in the caller). Returns the propagation of the mount holding the path.
 */
export type PropagationLookup = (hostPath: string) => 'shared' | 'slave' | 'private';

export interface SandboxFiles {
  /** The pod's hostname file; omitted when the sandbox has none. */
  hostnamePath?: string;
  hostsPath: string;
  resolvConfPath: string;
  /** The pod's /dev/shm directory (ignored with host IPC, where the host's /dev/shm is used). */
  shmPath: string;
}

export const ETC_HOSTNAME = '/etc/hostname';
export const ETC_HOSTS = '/etc/hosts';
export const RESOLV_CONF = '/etc/resolv.conf';
export const DEV_SHM = '/dev/shm';

const clean = (p: string): string => posix.normalize(p).replace(/(.)\/$/, '$1');

/** The mounts containerd adds from the sandbox unless the config mounts the same path. */
export function sandboxFileMounts(files: SandboxFiles, criMounts: readonly CriMount[], readonlyRootfs: boolean, hostIpc: boolean): BindRequest[] {
  const taken = new Set(criMounts.map((m) => clean(m.containerPath)));
  const out: BindRequest[] = [];
  const add = (containerPath: string, hostPath: string, ro: boolean): void => {
    if (!taken.has(containerPath)) out.push({ containerPath, hostPath, readonly: ro, propagation: MountPropagation.PROPAGATION_PRIVATE });
  };
  if (files.hostnamePath !== undefined) add(ETC_HOSTNAME, files.hostnamePath, readonlyRootfs);
  add(ETC_HOSTS, files.hostsPath, readonlyRootfs);
  add(RESOLV_CONF, files.resolvConfPath, readonlyRootfs);
  add(DEV_SHM, hostIpc ? DEV_SHM : files.shmPath, false);
  return out;
}

/** Most image config Volumes a container gets. */
export const MAX_IMAGE_VOLUMES = 128;

/**
 * Bind mounts for the image's declared Volumes that no CRI mount covers: each gets a
 * directory under `<containerRootDir>/volumes/`, named after a hash of its destination so the
 * result is deterministic. The caller creates the host directories.
 */
export function imageVolumeMounts(
  volumes: Record<string, unknown> | null | undefined,
  criMounts: readonly CriMount[],
  containerRootDir: string,
): BindRequest[] {
  if (!volumes) return [];
  const n = Object.keys(volumes).length;
  // Each is a directory and a bind mount: an image must not make a container with 1e5 of them.
  if (n > MAX_IMAGE_VOLUMES) {
    throw invalid('image config Volumes', `declares ${n} volumes, more than the ${MAX_IMAGE_VOLUMES} berth accepts`, 'oci.too_many_volumes');
  }
  const taken = new Set(criMounts.map((m) => clean(m.containerPath)));
  const root = absPath(containerRootDir, 'container root dir');
  const out: BindRequest[] = [];
  for (const dest of Object.keys(volumes).sort()) {
    const containerPath = absPath(dest, `image config Volumes[${JSON.stringify(dest)}]`);
    if (taken.has(containerPath)) continue;
    const id = createHash('sha256').update(containerPath).digest('hex').slice(0, 32);
    out.push({ containerPath, hostPath: `${root}/volumes/${id}`, readonly: false, propagation: MountPropagation.PROPAGATION_PRIVATE });
  }
  return out;
}

function criToBind(m: CriMount, field: string): BindRequest {
  if (m.uidMappings.length > 0 || m.gidMappings.length > 0) throw invalid(`${field}.uidMappings`, 'idmapped mounts are not supported', 'oci.invalid_mount');
  if (m.recursiveReadOnly) {
    // As kubelet and containerd: only a read-only, private bind can be made read-only recursively.
    if (!m.readonly) throw invalid(`${field}.readonly`, 'recursive_read_only needs readonly to be true', 'oci.invalid_mount');
    if (m.propagation !== MountPropagation.PROPAGATION_PRIVATE) {
      throw invalid(
        `${field}.propagation`,
        `recursive_read_only needs propagation PROPAGATION_PRIVATE, not ${MountPropagation[m.propagation] ?? m.propagation}`,
        'oci.invalid_mount',
      );
    }
  }
  // The caller (cri/container/image-volume.ts) turns image mounts into binds of their views.
  if (m.image !== undefined && m.image.image !== '') throw invalid(`${field}.image`, 'an image volume reached the spec unresolved', 'oci.invalid_mount');
  m.mountOptions.forEach((o, j) => {
    if (!MOUNT_OPTIONS.includes(o))
      throw invalid(`${field}.mount_options[${j}]`, `${JSON.stringify(o)} is not one of ${MOUNT_OPTIONS.join(', ')}`, 'oci.invalid_mount');
  });
  return {
    containerPath: absPath(m.containerPath, `${field}.container_path`),
    hostPath: absPath(m.hostPath, `${field}.host_path`),
    readonly: m.readonly,
    propagation: m.propagation,
    ...(m.recursiveReadOnly ? { recursiveReadOnly: true } : {}),
    ...(m.mountOptions.length > 0 ? { options: [...new Set(m.mountOptions)] } : {}),
  };
}

export interface MountPlan {
  mounts: Mount[];
  /** Set when a mount needs the rootfs to propagate (rshared / rslave). */
  rootfsPropagation?: 'rshared' | 'rslave';
}

export interface MountInputs {
  criMounts: readonly CriMount[];
  /** Sandbox files and image volumes; a CRI mount at the same path wins. */
  extraMounts: readonly BindRequest[];
  privileged: boolean;
  lookupPropagation?: PropagationLookup;
  field: string;
}

/**
 * The full mount list: default kernel mounts (minus any destination the binds cover, and
 * minus everything under /dev if /dev itself is bound), the read-only cgroup mount, then the
 * binds sorted by depth so a parent is mounted before its children.
 */
export function planMounts(inp: MountInputs): MountPlan {
  const binds: BindRequest[] = inp.criMounts.map((m, i) => criToBind(m, `${inp.field}[${i}]`));
  const criPaths = new Set(binds.map((b) => b.containerPath));
  for (const e of inp.extraMounts) {
    const containerPath = absPath(e.containerPath, 'extra mount container path');
    if (!criPaths.has(containerPath)) binds.push({ ...e, containerPath, hostPath: absPath(e.hostPath, 'extra mount host path') });
  }
  binds.sort((a, b) => pathDepth(a.containerPath) - pathDepth(b.containerPath));

  const bound = new Set(binds.map((b) => b.containerPath));
  const devBound = bound.has('/dev');
  const mounts: Mount[] = [];
  for (const m of [...defaultMounts(), cgroupMount()]) {
    if (bound.has(m.destination)) continue;
    if (devBound && m.destination.startsWith('/dev/')) continue;
    if (inp.privileged && (m.type === 'sysfs' || m.type === 'cgroup')) {
      // Privileged containers get writable sysfs and cgroupfs.
      m.options = (m.options ?? []).map((o) => (o === 'ro' ? 'rw' : o));
    }
    mounts.push(m);
  }

  let rootfsPropagation: MountPlan['rootfsPropagation'];
  binds.forEach((b) => {
    const options = ['rbind'];
    switch (b.propagation) {
      case MountPropagation.PROPAGATION_PRIVATE:
        options.push('rprivate');
        break;
      case MountPropagation.PROPAGATION_BIDIRECTIONAL:
        if (inp.lookupPropagation && inp.lookupPropagation(b.hostPath) !== 'shared') {
          throw errorNotShared(b.hostPath, 'a shared mount');
        }
        options.push('rshared');
        rootfsPropagation = 'rshared';
        break;
      case MountPropagation.PROPAGATION_HOST_TO_CONTAINER:
        if (inp.lookupPropagation && inp.lookupPropagation(b.hostPath) === 'private') {
          throw errorNotShared(b.hostPath, 'a shared or slave mount');
        }
        options.push('rslave');
        if (rootfsPropagation !== 'rshared') rootfsPropagation = 'rslave';
        break;
      default:
        throw invalid(`${inp.field}: ${b.containerPath}`, `unknown propagation ${String(b.propagation)}`, 'oci.invalid_mount');
    }
    // A read-only rootfs does not make the binds read-only (containerd's behaviour).
    options.push(b.readonly ? 'ro' : 'rw');
    if (b.recursiveReadOnly) options.push('rro');
    if (b.options) options.push(...b.options);
    mounts.push({ destination: b.containerPath, type: 'bind', source: b.hostPath, options });
  });
  return rootfsPropagation === undefined ? { mounts } : { mounts, rootfsPropagation };
}

function errorNotShared(hostPath: string, need: string) {
  return invalid('mount propagation', `host path ${JSON.stringify(hostPath)} is not on ${need}`, 'oci.mount_propagation');
}

/**
 * Only the owner of a network namespace's user namespace may mount sysfs for it: a container
 * in its own user namespace on the host network (owned by the host's) gets the host's /sys
 * bound instead (read-only, as containerd does for hostUsers=false with hostNetwork).
 */
export function bindSysfsForHostNetworkUserns(mounts: readonly Mount[]): Mount[] {
  return mounts.map((m) =>
    m.type === 'sysfs'
      ? {
          destination: m.destination,
          type: 'bind',
          source: '/sys',
          options: ['rbind', 'nosuid', 'noexec', 'nodev', (m.options ?? []).includes('rw') ? 'rw' : 'ro'],
        }
      : m,
  );
}
