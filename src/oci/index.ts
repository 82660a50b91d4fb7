/**
 * Public surface of OCI runtime spec generation.
 */
export { sandboxSpec, type SandboxSpecInput } from './sandbox-spec.js';
export { containerSpec, type ContainerSpecInput } from './container-spec.js';
export type { SpecOptions } from './options.js';
export type * from './spec.js';
export { OCI_VERSION } from './spec.js';
export {
  loadUserDb,
  parsePasswd,
  parseGroup,
  resolveUserString,
  imageGroupsOf,
  MAX_USER_DB_BYTES,
  MAX_USER_DB_LINES,
  type UserDb,
  type PasswdEntry,
  type GroupEntry,
  type ResolvedUser,
} from './passwd.js';
export { ALL_CAPABILITIES, DEFAULT_CAPABILITIES, capabilitiesUpTo, applyCapabilityChanges } from './capabilities.js';
export { defaultSeccompProfile, hostSeccompArch, type SeccompArch } from './seccomp-default.js';
export { seccompChoice, validateSeccompProfile, type SeccompChoice } from './seccomp.js';
export { validateSysctls, sysctlNamespace } from './sysctl.js';
export { imageVolumeMounts, sandboxFileMounts, type BindRequest, type SandboxFiles, type PropagationLookup } from './mounts.js';
export type { StatDevice, HostDeviceInfo } from './devices.js';
export { stopSignal, parseSignal, processArgs, mergeEnv } from './process.js';
export { clampOomScoreAdj } from './resources.js';
export { cgroupsPath } from './cgroups.js';
export { Annotations, DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS, DEFAULT_PATH_ENV, SANDBOX_OOM_SCORE_ADJ } from './defaults.js';
