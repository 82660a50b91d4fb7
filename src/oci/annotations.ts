/**
 * Which user-supplied annotations reach config.json. Some OCI runtimes act on annotations
 * (crun's run.oci.*, CRIU's org.criu.*), so those, and berth's own io.kubernetes.cri.*, are
 * dropped unless the runtime handler explicitly allows them.
 */

/** Prefixes an OCI runtime may interpret, or that berth itself sets. */
export const RESERVED_ANNOTATION_PREFIXES: readonly string[] = ['io.kubernetes.cri.', 'run.oci.', 'org.criu.', 'org.opencontainers.runc.', 'io.containerd.'];

/** Glob match with '*' as the only wildcard (any run of characters). */
export function globMatch(pattern: string, key: string): boolean {
  const re = new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return re.test(key);
}

const matchesAny = (patterns: readonly string[], key: string): boolean => patterns.some((p) => globMatch(p, key));

/**
 * Container annotations: all of them, except reserved prefixes not matched by `allowed`.
 */
export function containerAnnotations(src: Readonly<Record<string, string>>, allowed: readonly string[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(src)) {
    if (RESERVED_ANNOTATION_PREFIXES.some((p) => k.startsWith(p)) && !matchesAny(allowed, k)) continue;
    out[k] = v;
  }
  return out;
}

/** Pod annotations: only those matching the runtime handler's pod annotation patterns. */
export function podAnnotations(src: Readonly<Record<string, string>>, patterns: readonly string[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(src)) if (matchesAny(patterns, k)) out[k] = v;
  return out;
}
