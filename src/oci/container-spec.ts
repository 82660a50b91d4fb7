/**
 * An app container's OCI spec for CreateContainer, following containerd 1.7's CRI plugin.
 * Pure: every host fact (device nodes, mount propagation, files of the image) comes in
 * through the input.
 */
import type { ContainerConfig, PodSandboxConfig } from '../api/cri/runtime/v1/api_pb.js';
import { NamespaceMode, NamespaceOptionSchema } from '../api/cri/runtime/v1/api_pb.js';
import { create } from '@bufbuild/protobuf';
import { containerAnnotations, podAnnotations } from './annotations.js';
import { ALL_CAPABILITIES, applyCapabilityChanges, capabilitySets, DEFAULT_CAPABILITIES } from './capabilities.js';
import { cgroupsPath } from './cgroups.js';
import { allDevicesAllowed, Annotations, DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS, defaultDeviceRules } from './defaults.js';
import { planDevices, type StatDevice } from './devices.js';
import { bindSysfsForHostNetworkUserns, planMounts, sandboxFileMounts, type BindRequest, type PropagationLookup, type SandboxFiles } from './mounts.js';
import { containerNamespaces, effectiveNamespaceOptions, type PodNamespacePaths } from './namespaces.js';
import type { SpecOptions } from './options.js';
import type { UserDb } from './passwd.js';
import { containerEnv, processArgs, workingDir } from './process.js';
import { planResources } from './resources.js';
import { buildSeccomp, seccompChoice } from './seccomp.js';
import { OCI_VERSION, type ImageConfig, type LinuxSeccomp, type Spec } from './spec.js';
import { resolveProcessUser } from './user.js';
import { absPath, idFromInt64, invalid, noNul } from './values.js';

export interface ContainerSpecInput {
  id: string;
  sandboxId: string;
  config: ContainerConfig;
  sandboxConfig: PodSandboxConfig;
  /** The image's config section. Never mutated; the spec gets its own copies. */
  image: ImageConfig;
  /** The image reference recorded in the io.kubernetes.cri.image-name annotation. */
  imageName: string;
  /** Root filesystem path as written to root.path. */
  rootfsPath: string;
  /** The pod's namespaces to join (pinned paths; pid: the pause's, for pid mode POD). */
  podNamespaces?: PodNamespacePaths;
  /** Legacy, without podNamespaces: pid of the pause (namespaces joined via /proc/<pid>/ns/*). */
  sandboxPid?: number;
  /** Pid of the target container for pid namespace mode TARGET. */
  targetPid?: number;
  sandboxFiles: SandboxFiles;
  /** Further binds, e.g. imageVolumeMounts(...); a CRI mount at the same path wins. */
  extraMounts?: readonly BindRequest[];
  /** The image's /etc/passwd and /etc/group. */
  userDb?: UserDb;
  /** Used for HOSTNAME when the pod sets no hostname (host network pods). */
  nodeHostname?: string;
  statDevice?: StatDevice;
  lookupPropagation?: PropagationLookup;
  /** Parsed profile when the container asks for a Localhost seccomp profile. */
  localhostSeccompProfile?: LinuxSeccomp;
  options?: SpecOptions;
}

const FIELD = 'container config';

// Not applied (as on a node without AppArmor/SELinux): apparmor / apparmor_profile,
// selinux_options and selinux_relabel are accepted and ignored; add_ambient_capabilities too
// (ambient sets stay empty, as in containerd).

/**
 * Masked / read-only paths: the config's lists when given; none when privileged. An empty list
 * means the defaults, except in a pod user namespace, where it means none: kubelet sends the
 * default lists for procMount Default and empty ones for procMount Unmasked, which it allows
 * only with user namespaces (hostUsers: false). crictl and others that send nothing keep the
 * defaults outside a user namespace.
 */
function procPaths(given: readonly string[], defaults: readonly string[], privileged: boolean, emptyMeansNone: boolean, field: string): string[] {
  if (privileged) return [];
  if (given.length === 0) return emptyMeansNone ? [] : [...defaults];
  return given.map((p, i) => absPath(p, `${field}[${i}]`));
}

export function containerSpec(inp: ContainerSpecInput): Spec {
  const { config, sandboxConfig, image } = inp;
  const opts = inp.options ?? {};
  const sc = config.linux?.securityContext;
  const scField = `${FIELD}: linux.security_context`;
  const privileged = sc?.privileged ?? false;
  if (config.metadata === undefined || config.metadata.name === '') throw invalid(`${FIELD}: metadata.name`, 'must be set');
  if (privileged && !sandboxConfig.linux?.securityContext?.privileged) {
    throw invalid(`${scField}.privileged`, 'no privileged container allowed in a sandbox that is not privileged', 'oci.privileged_not_allowed');
  }
  const nsOpts = effectiveNamespaceOptions(sc?.namespaceOptions, sandboxConfig.linux?.securityContext?.namespaceOptions);
  const hostIpc = nsOpts?.ipc === NamespaceMode.NODE;
  const readonlyRootfs = sc?.readonlyRootfs ?? false;

  const hostname = sandboxConfig.hostname !== '' ? sandboxConfig.hostname : (inp.nodeHostname ?? '');
  const user = resolveProcessUser({
    runAsUser: sc?.runAsUser,
    runAsGroup: sc?.runAsGroup,
    runAsUsername: sc?.runAsUsername,
    imageUser: image.User,
    supplementalGroups: sc?.supplementalGroups ?? [],
    policy: sc?.supplementalGroupsPolicy,
    imageGroups: true,
    db: inp.userDb ?? {},
    field: scField,
  });

  const allCaps = opts.allCapabilities ?? ALL_CAPABILITIES;
  const caps = privileged
    ? [...allCaps]
    : applyCapabilityChanges(
        DEFAULT_CAPABILITIES,
        sc?.capabilities?.addCapabilities ?? [],
        sc?.capabilities?.dropCapabilities ?? [],
        allCaps,
        `${scField}.capabilities`,
      );

  const extra = [...sandboxFileMounts(inp.sandboxFiles, config.mounts, readonlyRootfs, hostIpc), ...(inp.extraMounts ?? [])];
  const mountPlan = planMounts({
    criMounts: config.mounts,
    extraMounts: extra,
    privileged,
    lookupPropagation: inp.lookupPropagation,
    field: `${FIELD}: mounts`,
  });

  const devicePlan = privileged
    ? { devices: [...(opts.hostDevices ?? [])].map((d) => ({ ...d })), rules: allDevicesAllowed() }
    : planDevices(
        config.devices,
        inp.statDevice,
        opts.deviceOwnershipFromSecurityContext
          ? {
              uid: sc?.runAsUser ? idFromInt64(sc.runAsUser.value, `${scField}.run_as_user.value`) : undefined,
              gid: sc?.runAsGroup ? idFromInt64(sc.runAsGroup.value, `${scField}.run_as_group.value`) : undefined,
            }
          : undefined,
        `${FIELD}: devices`,
      );
  const deviceRules = privileged ? devicePlan.rules : [...defaultDeviceRules(), ...devicePlan.rules];

  const resPlan = opts.disableCgroup
    ? { resources: { devices: deviceRules } }
    : planResources(config.linux?.resources, { devices: deviceRules }, opts, `${FIELD}: linux.resources`);

  // A pod with its own user namespace owns the namespaces its containers join: a container
  // whose config names no userns_options (kubelet sends them; crictl, berth run may not)
  // joins it with the pod's mappings rather than staying in the host user namespace.
  const podUserns = sandboxConfig.linux?.securityContext?.namespaceOptions?.usernsOptions;
  const joinOpts = nsOpts?.usernsOptions || !podUserns ? nsOpts : { ...(nsOpts ?? create(NamespaceOptionSchema)), usernsOptions: podUserns };
  const ns = containerNamespaces({
    options: joinOpts,
    pod: inp.podNamespaces,
    sandboxPid: inp.sandboxPid,
    targetPid: inp.targetPid,
    cgroupNamespace: (opts.cgroupNamespace ?? false) && !privileged,
    field: scField,
  });

  const seccomp = buildSeccomp(
    seccompChoice(sc, scField, opts.unsetSeccompProfile),
    caps,
    { arch: opts.arch, seccompEnabled: opts.seccompEnabled, localhostProfile: inp.localhostSeccompProfile },
    `${scField}.seccomp`,
  );

  const spec: Spec = {
    ociVersion: OCI_VERSION,
    process: {
      terminal: config.tty,
      user,
      args: processArgs(config.command, config.args, image, `${FIELD}: command/args`),
      env: containerEnv(image, config.envs, hostname, `${FIELD}: envs`),
      cwd: workingDir(config.workingDir, image, `${FIELD}: working_dir`),
      capabilities: capabilitySets(caps),
      noNewPrivileges: sc?.noNewPrivs ?? false,
    },
    root: { path: noNul(inp.rootfsPath, 'rootfs path'), readonly: readonlyRootfs },
    mounts: ns.userns && nsOpts?.network === NamespaceMode.NODE ? bindSysfsForHostNetworkUserns(mountPlan.mounts) : mountPlan.mounts,
    linux: {
      namespaces: ns.namespaces,
      resources: resPlan.resources,
      maskedPaths: procPaths(sc?.maskedPaths ?? [], DEFAULT_MASKED_PATHS, privileged, ns.userns !== undefined, `${scField}.masked_paths`),
      readonlyPaths: procPaths(sc?.readonlyPaths ?? [], DEFAULT_READONLY_PATHS, privileged, ns.userns !== undefined, `${scField}.readonly_paths`),
    },
  };
  const l = spec.linux!;
  if (resPlan.oomScoreAdj !== undefined) spec.process!.oomScoreAdj = resPlan.oomScoreAdj;
  if (devicePlan.devices.length > 0) l.devices = devicePlan.devices;
  if (mountPlan.rootfsPropagation) l.rootfsPropagation = mountPlan.rootfsPropagation;
  if (seccomp) l.seccomp = seccomp;
  if (ns.userns) {
    l.uidMappings = ns.userns.uidMappings;
    l.gidMappings = ns.userns.gidMappings;
  }
  if (!opts.disableCgroup) {
    const parent = sandboxConfig.linux?.cgroupParent || opts.defaultCgroupParent || '';
    if (parent !== '') l.cgroupsPath = cgroupsPath(parent, inp.id, 'sandbox config: linux.cgroup_parent');
  }

  const md = sandboxConfig.metadata;
  spec.annotations = {
    ...podAnnotations(sandboxConfig.annotations, opts.podAnnotations),
    ...containerAnnotations(config.annotations, opts.allowedContainerAnnotations),
    [Annotations.ContainerType]: Annotations.ContainerTypeContainer,
    [Annotations.SandboxID]: inp.sandboxId,
    [Annotations.SandboxNamespace]: md?.namespace ?? '',
    [Annotations.SandboxUID]: md?.uid ?? '',
    [Annotations.SandboxName]: md?.name ?? '',
    [Annotations.ContainerName]: config.metadata.name,
    [Annotations.ImageName]: inp.imageName,
  };
  return spec;
}
