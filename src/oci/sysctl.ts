/**
 * Pod sysctls: only namespaced sysctls are allowed, and only when the pod owns the namespace
 * they belong to. Keys and values stay separate all the way to config.json (a JSON object):
 * nothing here ever builds a "key=value" string, so a value containing "+" or "=" cannot
 * smuggle in another sysctl (CVE-2022-0811).
 */
import { invalid } from './values.js';

export type SysctlNamespace = 'ipc' | 'net';

const IPC_EXACT = new Set(['kernel.sem']);
const IPC_PREFIXES = ['kernel.shm', 'kernel.msg', 'fs.mqueue.'];
const NET_PREFIX = 'net.';

// Dotted components of letters, digits, '-' and '_' (interface names included); no '/', no '..'.
const KEY_RE = /^[A-Za-z0-9]([-_A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-_A-Za-z0-9]*[A-Za-z0-9])?)*$/;
const MAX_KEY = 253;
const MAX_VALUE = 4096;

/** The namespace a sysctl belongs to, or undefined when it is not namespaced (node-wide). */
export function sysctlNamespace(key: string): SysctlNamespace | undefined {
  if (IPC_EXACT.has(key) || IPC_PREFIXES.some((p) => key.startsWith(p))) return 'ipc';
  if (key.startsWith(NET_PREFIX)) return 'net';
  return undefined;
}

export interface SysctlContext {
  hostNetwork: boolean;
  hostIpc: boolean;
}

/**
 * Validates the pod's sysctls and returns a new map for linux.sysctl.
 * Throws InvalidArgument naming the offending sysctl.
 */
export function validateSysctls(sysctls: Readonly<Record<string, string>>, ctx: SysctlContext, field = 'linux.sysctls'): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(sysctls)) {
    const f = `${field}[${JSON.stringify(key)}]`;
    if (key.length > MAX_KEY || !KEY_RE.test(key)) throw invalid(f, 'invalid sysctl name', 'oci.invalid_sysctl');
    const ns = sysctlNamespace(key);
    if (ns === undefined) throw invalid(f, 'sysctl is not namespaced (not allowed)', 'oci.invalid_sysctl');
    if (ns === 'net' && ctx.hostNetwork) throw invalid(f, 'network sysctls are not allowed with host network', 'oci.invalid_sysctl');
    if (ns === 'ipc' && ctx.hostIpc) throw invalid(f, 'ipc sysctls are not allowed with host ipc', 'oci.invalid_sysctl');
    if (typeof value !== 'string' || value.length > MAX_VALUE || /[\0\n\r]/.test(value)) {
      throw invalid(f, 'invalid sysctl value (control characters or too long)', 'oci.invalid_sysctl');
    }
    out[key] = value;
  }
  return out;
}
