/**
 * Linux capabilities: the full list, containerd's default set, and CRI add/drop with "ALL".
 */
import type { LinuxCapabilities } from './spec.js';
import { invalid } from './values.js';

/** Every capability up to CAP_CHECKPOINT_RESTORE (number 40), in kernel numbering order. */
export const ALL_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_DAC_READ_SEARCH',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETPCAP',
  'CAP_LINUX_IMMUTABLE',
  'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST',
  'CAP_NET_ADMIN',
  'CAP_NET_RAW',
  'CAP_IPC_LOCK',
  'CAP_IPC_OWNER',
  'CAP_SYS_MODULE',
  'CAP_SYS_RAWIO',
  'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT',
  'CAP_SYS_NICE',
  'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG',
  'CAP_MKNOD',
  'CAP_LEASE',
  'CAP_AUDIT_WRITE',
  'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE',
  'CAP_MAC_ADMIN',
  'CAP_SYSLOG',
  'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_READ',
  'CAP_PERFMON',
  'CAP_BPF',
  'CAP_CHECKPOINT_RESTORE',
];

/** containerd's (and Docker's) default capability set for containers. */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

/**
 * The capabilities the running kernel knows (cap_last_cap from /proc/sys/kernel/cap_last_cap,
 * read by the caller): asking runc for a newer one than the kernel has fails or is ignored.
 */
export function capabilitiesUpTo(lastCap: number): string[] {
  return ALL_CAPABILITIES.slice(0, Math.max(0, Math.min(lastCap + 1, ALL_CAPABILITIES.length)));
}

/** "net_admin", "NET_ADMIN" or "CAP_NET_ADMIN" → "CAP_NET_ADMIN"; unknown names are rejected. */
export function normalizeCapability(name: string, field: string): string {
  const upper = name.trim().toUpperCase();
  const full = upper.startsWith('CAP_') ? upper : `CAP_${upper}`;
  if (!ALL_CAPABILITIES.includes(full)) throw invalid(field, `unknown capability ${JSON.stringify(name)}`, 'oci.invalid_capability');
  return full;
}

const isAll = (c: string): boolean => c.trim().toUpperCase() === 'ALL';

/**
 * Applies CRI add/drop lists to a base set, with containerd's order: "ALL" in add first sets
 * every capability, "ALL" in drop then clears the set, then the named additions are added and
 * the named drops removed. So add [ALL] + drop [CHOWN] = all but CHOWN, and drop [ALL] +
 * add [NET_ADMIN] = only NET_ADMIN.
 */
export function applyCapabilityChanges(
  base: readonly string[],
  add: readonly string[],
  drop: readonly string[],
  allCaps: readonly string[] = ALL_CAPABILITIES,
  field = 'capabilities',
): string[] {
  let caps: string[] = [...base];
  if (add.some(isAll)) caps = [...allCaps];
  if (drop.some(isAll)) caps = [];
  for (const c of add) {
    if (isAll(c)) continue;
    const n = normalizeCapability(c, `${field}.add_capabilities`);
    if (!caps.includes(n)) caps.push(n);
  }
  const dropped = new Set(drop.filter((c) => !isAll(c)).map((c) => normalizeCapability(c, `${field}.drop_capabilities`)));
  return caps.filter((c) => !dropped.has(c));
}

/**
 * The process capability sets for a list: bounding, effective and permitted. Inheritable and
 * ambient stay empty (an inheritable set lets file capabilities of an exec'd binary grant
 * more than intended, CVE-2022-24769).
 */
export function capabilitySets(caps: readonly string[]): LinuxCapabilities {
  return { bounding: [...caps], effective: [...caps], permitted: [...caps] };
}
