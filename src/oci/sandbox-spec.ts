/**
 * The pause container's OCI spec for RunPodSandbox.
 */
import type { PodSandboxConfig } from '../api/cri/runtime/v1/api_pb.js';
import { NamespaceMode } from '../api/cri/runtime/v1/api_pb.js';
import { podAnnotations } from './annotations.js';
import { capabilitySets, DEFAULT_CAPABILITIES } from './capabilities.js';
import { cgroupsPath } from './cgroups.js';
import {
  Annotations,
  DEFAULT_MASKED_PATHS,
  DEFAULT_READONLY_PATHS,
  defaultDeviceRules,
  defaultMounts,
  SANDBOX_CPU_SHARES,
  SANDBOX_OOM_SCORE_ADJ,
} from './defaults.js';
import { bindSysfsForHostNetworkUserns, DEV_SHM, RESOLV_CONF } from './mounts.js';
import type { SpecOptions } from './options.js';
import type { UserDb } from './passwd.js';
import { sandboxEnv } from './process.js';
import { clampOomScoreAdj } from './resources.js';
import { buildSeccomp, seccompChoice } from './seccomp.js';
import { OCI_VERSION, type ImageConfig, type LinuxSeccomp, type Mount, type Spec } from './spec.js';
import { sandboxNamespaces } from './namespaces.js';
import { validateSysctls } from './sysctl.js';
import { resolveProcessUser } from './user.js';
import { absPath, invalid, noNul } from './values.js';

export interface SandboxSpecInput {
  id: string;
  config: PodSandboxConfig;
  /** The pause image's config (Entrypoint/Cmd/Env/WorkingDir/User). */
  image: ImageConfig;
  /** Root filesystem path as written to root.path (absolute, or relative to the bundle). */
  rootfsPath: string;
  /** The pod's /dev/shm directory (unused with host IPC) and resolv.conf. */
  shmPath: string;
  resolvConfPath: string;
  /** The pod's network namespace file; omitted with host network. */
  netnsPath?: string;
  /**
   * The pod's pinned namespaces (src/network/pin.ts): the pause joins them by path and owns
   * only its pid and mount namespaces. The pin already set the hostname and the sysctls, so
   * the spec carries neither (they are still validated).
   */
  pins?: { net?: string; ipc?: string; uts?: string; user?: string };
  /** The pause image's /etc/passwd and /etc/group, if its User needs a lookup. */
  userDb?: UserDb;
  /** Parsed profile when the pod asks for a Localhost seccomp profile. */
  localhostSeccompProfile?: LinuxSeccomp;
  options?: SpecOptions;
}

const FIELD = 'sandbox config';

export function sandboxSpec(inp: SandboxSpecInput): Spec {
  const { config, image } = inp;
  const opts = inp.options ?? {};
  const linux = config.linux;
  const sc = linux?.securityContext;
  const nsOpts = sc?.namespaceOptions;
  const hostNetwork = nsOpts?.network === NamespaceMode.NODE;
  const hostIpc = nsOpts?.ipc === NamespaceMode.NODE;

  const args = [...(image.Entrypoint ?? []), ...(image.Cmd ?? [])];
  if (args.length === 0) throw invalid('sandbox image config', 'has neither Entrypoint nor Cmd', 'oci.no_command');
  args.forEach((a, i) => noNul(a, `sandbox image config args[${i}]`));

  const user = resolveProcessUser({
    runAsUser: sc?.runAsUser,
    runAsGroup: sc?.runAsGroup,
    imageUser: image.User,
    supplementalGroups: sc?.supplementalGroups ?? [],
    imageGroups: false,
    db: inp.userDb ?? {},
    field: `${FIELD}: linux.security_context`,
  });

  const caps = [...DEFAULT_CAPABILITIES];
  const ns = sandboxNamespaces({
    options: nsOpts,
    netnsPath: hostNetwork ? undefined : inp.netnsPath,
    pins: inp.pins,
    field: `${FIELD}: linux.security_context.namespace_options`,
  });

  // Kernel filesystems, with the pod's /dev/shm (or the host's, with host IPC) bound read-only
  // over the default tmpfs, and the pod's resolv.conf. nosuid/nodev/noexec: the shm tmpfs has
  // them, and in a user namespace a read-only remount that would clear them is refused.
  const kernelMounts = defaultMounts().filter((m) => m.destination !== DEV_SHM);
  const mounts: Mount[] = hostNetwork && ns.userns ? bindSysfsForHostNetworkUserns(kernelMounts) : kernelMounts;
  mounts.push({
    destination: DEV_SHM,
    type: 'bind',
    source: hostIpc ? DEV_SHM : absPath(inp.shmPath, 'sandbox shm path'),
    options: ['rbind', 'ro', 'nosuid', 'nodev', 'noexec'],
  });
  mounts.push({
    destination: RESOLV_CONF,
    type: 'bind',
    source: absPath(inp.resolvConfPath, 'sandbox resolv.conf path'),
    options: ['rbind', 'ro', 'nosuid', 'nodev', 'noexec'],
  });

  const spec: Spec = {
    ociVersion: OCI_VERSION,
    process: {
      terminal: false,
      user,
      args,
      env: sandboxEnv(image),
      cwd: image.WorkingDir ? absPath(image.WorkingDir, 'sandbox image config WorkingDir') : '/',
      capabilities: capabilitySets(caps),
      noNewPrivileges: true,
      oomScoreAdj: clampOomScoreAdj(SANDBOX_OOM_SCORE_ADJ, opts.restrictOomScoreAdj),
    },
    root: { path: noNul(inp.rootfsPath, 'rootfs path'), readonly: true },
    mounts,
    annotations: {},
    linux: {
      namespaces: ns.namespaces,
      maskedPaths: [...DEFAULT_MASKED_PATHS],
      readonlyPaths: [...DEFAULT_READONLY_PATHS],
      resources: { devices: defaultDeviceRules() },
    },
  };
  const l = spec.linux!;

  // A hostname needs a private UTS namespace; with host network the pod uses the node's.
  if (!hostNetwork && !inp.pins && config.hostname !== '') spec.hostname = noNul(config.hostname, `${FIELD}: hostname`);

  if (ns.userns) {
    l.uidMappings = ns.userns.uidMappings;
    l.gidMappings = ns.userns.gidMappings;
  }

  const sysctls = validateSysctls(linux?.sysctls ?? {}, { hostNetwork, hostIpc }, `${FIELD}: linux.sysctls`);
  if (!inp.pins && Object.keys(sysctls).length > 0) l.sysctl = sysctls;

  const seccomp = buildSeccomp(
    seccompChoice(sc, `${FIELD}: linux.security_context`, opts.unsetSeccompProfile),
    caps,
    { arch: opts.arch, seccompEnabled: opts.seccompEnabled, localhostProfile: inp.localhostSeccompProfile },
    `${FIELD}: linux.security_context.seccomp`,
  );
  if (seccomp) l.seccomp = seccomp;

  if (!opts.disableCgroup) {
    l.resources!.cpu = { shares: SANDBOX_CPU_SHARES };
    const parent = linux?.cgroupParent || opts.defaultCgroupParent || '';
    if (parent !== '') l.cgroupsPath = cgroupsPath(parent, inp.id, `${FIELD}: linux.cgroup_parent`);
  }

  const md = config.metadata;
  spec.annotations = {
    ...podAnnotations(config.annotations, opts.podAnnotations),
    [Annotations.ContainerType]: Annotations.ContainerTypeSandbox,
    [Annotations.SandboxID]: inp.id,
    [Annotations.SandboxNamespace]: md?.namespace ?? '',
    [Annotations.SandboxUID]: md?.uid ?? '',
    [Annotations.SandboxName]: md?.name ?? '',
    [Annotations.SandboxLogDir]: config.logDirectory,
  };
  return spec;
}
