/**
 * Runtime-level settings for spec generation (from berth's config and the runtime handler,
 * plus facts about the node the caller has looked up).
 */
import type { SeccompArch } from './seccomp-default.js';
import type { LinuxDevice } from './spec.js';

export interface SpecOptions {
  /** The daemon's own oom_score_adj: lower requested values are raised to it. */
  restrictOomScoreAdj?: number;
  /** Used when a pod has no cgroup_parent; none → no cgroupsPath (runc's default). */
  defaultCgroupParent?: string;
  /** Write no cgroupsPath and no resource limits. */
  disableCgroup?: boolean;
  /** Seccomp available on this node (default true). */
  seccompEnabled?: boolean;
  /** Profile string used when a pod or container specifies none ("" = none, containerd's default). */
  unsetSeccompProfile?: string;
  arch?: SeccompArch;
  /** Capabilities the kernel knows (see capabilitiesUpTo); default: the full list. */
  allCapabilities?: readonly string[];
  /** cgroup v2: give unprivileged containers a private cgroup namespace. */
  cgroupNamespace?: boolean;
  swapControllerAvailable?: boolean;
  hugetlbAvailable?: boolean;
  pidsLimit?: number;
  /** Host devices given to privileged containers (the caller lists /dev). */
  hostDevices?: readonly LinuxDevice[];
  /** Device nodes owned by run_as_user / run_as_group instead of the host owner. */
  deviceOwnershipFromSecurityContext?: boolean;
  /** Pod annotation patterns ('*' globs) passed into specs (runtime handler pod_annotations). */
  podAnnotations?: readonly string[];
  /** Reserved-prefix container annotations the handler allows ('*' globs). */
  allowedContainerAnnotations?: readonly string[];
}
