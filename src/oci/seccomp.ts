/**
 * Which seccomp profile a sandbox or container gets, following containerd 1.7's CRI plugin:
 * the SecurityProfile message wins; else the deprecated *_profile_path string
 * ("runtime/default", "docker/default", "unconfined", "localhost/<path>"); else the runtime's
 * configured default for an unset profile; else none. Privileged means none.
 */
import { SecurityProfile_ProfileType, type SecurityProfile } from '../api/cri/runtime/v1/api_pb.js';
import { defaultSeccompProfile, type SeccompArch } from './seccomp-default.js';
import type { LinuxSeccomp, LinuxSyscall, SeccompAction, SeccompOperator } from './spec.js';
import { absPath, invalid } from './values.js';

export type SeccompChoice = { kind: 'unconfined' } | { kind: 'runtime-default' } | { kind: 'localhost'; path: string };

const LOCALHOST_PREFIX = 'localhost/';

function fromProfilePath(p: string, field: string): SeccompChoice {
  switch (p) {
    case '':
    case 'runtime/default':
    case 'docker/default':
      return { kind: 'runtime-default' };
    case 'unconfined':
      return { kind: 'unconfined' };
    default:
      if (!p.startsWith(LOCALHOST_PREFIX)) throw invalid(field, `invalid seccomp profile ${JSON.stringify(p)}`, 'oci.invalid_seccomp');
      return { kind: 'localhost', path: absPath(p.slice(LOCALHOST_PREFIX.length), field) };
  }
}

export interface SeccompSource {
  seccomp?: SecurityProfile | undefined;
  seccompProfilePath?: string;
  privileged?: boolean;
}

/**
 * Resolves the seccomp choice for a security context. `unsetProfile` is the runtime's profile
 * string for when nothing is specified ("" = none, as containerd's default).
 * Returns the choice, with 'unconfined' meaning "write no seccomp section".
 */
export function seccompChoice(sc: SeccompSource | undefined, field: string, unsetProfile = ''): SeccompChoice {
  if (sc?.privileged) return { kind: 'unconfined' };
  const sp = sc?.seccomp;
  if (sp === undefined) {
    const p = sc?.seccompProfilePath ?? '';
    if (p !== '') return fromProfilePath(p, `${field}.seccomp_profile_path`);
    if (unsetProfile !== '') return fromProfilePath(unsetProfile, 'runtime option unset_seccomp_profile');
    return { kind: 'unconfined' };
  }
  const f = `${field}.seccomp`;
  if (sp.profileType !== SecurityProfile_ProfileType.Localhost && sp.localhostRef !== '') {
    throw invalid(f, 'localhost_ref must only be set when profile_type is Localhost', 'oci.invalid_seccomp');
  }
  switch (sp.profileType) {
    case SecurityProfile_ProfileType.Unconfined:
      return { kind: 'unconfined' };
    case SecurityProfile_ProfileType.RuntimeDefault:
      return { kind: 'runtime-default' };
    case SecurityProfile_ProfileType.Localhost: {
      const ref = sp.localhostRef.startsWith(LOCALHOST_PREFIX) ? sp.localhostRef.slice(LOCALHOST_PREFIX.length) : sp.localhostRef;
      return { kind: 'localhost', path: absPath(ref, `${f}.localhost_ref`) };
    }
    default:
      throw invalid(f, `unknown profile_type ${String(sp.profileType)}`, 'oci.invalid_seccomp');
  }
}

const ACTIONS = new Set<SeccompAction>([
  'SCMP_ACT_KILL',
  'SCMP_ACT_KILL_PROCESS',
  'SCMP_ACT_KILL_THREAD',
  'SCMP_ACT_TRAP',
  'SCMP_ACT_ERRNO',
  'SCMP_ACT_TRACE',
  'SCMP_ACT_ALLOW',
  'SCMP_ACT_LOG',
  'SCMP_ACT_NOTIFY',
]);
const OPS = new Set<SeccompOperator>(['SCMP_CMP_NE', 'SCMP_CMP_LT', 'SCMP_CMP_LE', 'SCMP_CMP_EQ', 'SCMP_CMP_GE', 'SCMP_CMP_GT', 'SCMP_CMP_MASKED_EQ']);

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStrArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;

/**
 * Checks a parsed localhost profile (OCI LinuxSeccomp JSON, as containerd loads it) and
 * returns a clean copy holding only the known fields.
 */
export function validateSeccompProfile(v: unknown, field = 'seccomp profile'): LinuxSeccomp {
  if (!isObj(v)) throw invalid(field, 'must be a JSON object', 'oci.invalid_seccomp');
  const act = (a: unknown, f: string): SeccompAction => {
    if (typeof a !== 'string' || !ACTIONS.has(a as SeccompAction)) throw invalid(f, `unknown action ${JSON.stringify(a)}`, 'oci.invalid_seccomp');
    return a as SeccompAction;
  };
  const out: LinuxSeccomp = { defaultAction: act(v.defaultAction, `${field}.defaultAction`) };
  if (v.defaultErrnoRet !== undefined) {
    if (!isUint(v.defaultErrnoRet)) throw invalid(`${field}.defaultErrnoRet`, 'must be an unsigned integer', 'oci.invalid_seccomp');
    out.defaultErrnoRet = v.defaultErrnoRet;
  }
  for (const k of ['architectures', 'flags'] as const) {
    if (v[k] === undefined || v[k] === null) continue;
    if (!isStrArray(v[k])) throw invalid(`${field}.${k}`, 'must be an array of strings', 'oci.invalid_seccomp');
    out[k] = [...(v[k] as string[])];
  }
  if (v.listenerPath !== undefined) {
    if (typeof v.listenerPath !== 'string') throw invalid(`${field}.listenerPath`, 'must be a string', 'oci.invalid_seccomp');
    out.listenerPath = v.listenerPath;
  }
  if (v.syscalls !== undefined && v.syscalls !== null) {
    if (!Array.isArray(v.syscalls)) throw invalid(`${field}.syscalls`, 'must be an array', 'oci.invalid_seccomp');
    out.syscalls = v.syscalls.map((s: unknown, i: number): LinuxSyscall => {
      const f = `${field}.syscalls[${i}]`;
      if (!isObj(s) || !isStrArray(s.names) || s.names.length === 0) throw invalid(f, 'needs a non-empty names array', 'oci.invalid_seccomp');
      const sc: LinuxSyscall = { names: [...s.names], action: act(s.action, `${f}.action`) };
      if (s.errnoRet !== undefined) {
        if (!isUint(s.errnoRet)) throw invalid(`${f}.errnoRet`, 'must be an unsigned integer', 'oci.invalid_seccomp');
        sc.errnoRet = s.errnoRet;
      }
      if (s.args !== undefined && s.args !== null) {
        if (!Array.isArray(s.args)) throw invalid(`${f}.args`, 'must be an array', 'oci.invalid_seccomp');
        sc.args = s.args.map((a: unknown, j: number) => {
          const fa = `${f}.args[${j}]`;
          if (!isObj(a) || !isUint(a.index) || !isUint(a.value) || (a.valueTwo !== undefined && !isUint(a.valueTwo))) {
            throw invalid(fa, 'needs unsigned integer index, value and valueTwo', 'oci.invalid_seccomp');
          }
          if (typeof a.op !== 'string' || !OPS.has(a.op as SeccompOperator))
            throw invalid(`${fa}.op`, `unknown operator ${JSON.stringify(a.op)}`, 'oci.invalid_seccomp');
          return a.valueTwo === undefined
            ? { index: a.index, value: a.value, op: a.op as SeccompOperator }
            : { index: a.index, value: a.value, valueTwo: a.valueTwo as number, op: a.op as SeccompOperator };
        });
      }
      return sc;
    });
  }
  return out;
}

export interface SeccompBuildOptions {
  arch?: SeccompArch;
  /** The parsed profile for a Localhost choice (the caller reads `choice.path`). */
  localhostProfile?: LinuxSeccomp;
  /** False when the kernel or runtime lacks seccomp: anything but Unconfined is then an error. */
  seccompEnabled?: boolean;
}

/** The linux.seccomp section for a choice, or undefined for none. */
export function buildSeccomp(choice: SeccompChoice, boundingCaps: readonly string[], opts: SeccompBuildOptions, field: string): LinuxSeccomp | undefined {
  if (choice.kind === 'unconfined') return undefined;
  if (opts.seccompEnabled === false) throw invalid(field, 'seccomp is not supported on this node', 'oci.seccomp_unsupported');
  if (choice.kind === 'runtime-default') return defaultSeccompProfile(boundingCaps, opts.arch);
  if (!opts.localhostProfile) throw invalid(field, `localhost seccomp profile ${JSON.stringify(choice.path)} was not loaded`, 'oci.invalid_seccomp');
  return validateSeccompProfile(opts.localhostProfile, `seccomp profile ${choice.path}`);
}
