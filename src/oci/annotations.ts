/**
 * Which user-supplied annotations reach config.json. OCI runtimes act on annotations (runc's
 * org.systemd.property.* become systemd unit properties, crun's run.oci.*, CRIU's org.criu.*),
 * so only those the runtime handler allows pass (its pod_annotations / container_annotations
 * patterns, as containerd does); berth's own io.kubernetes.cri.* never come from the user.
 */

/** Glob match with '*' as the only wildcard (any run of characters). */
export function globMatch(pattern: string, key: string): boolean {
  const re = new RegExp(
    `^${pattern
      .split('*')
      .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  );
  return re.test(key);
}

const matchesAny = (patterns: readonly string[], key: string): boolean => patterns.some((p) => globMatch(p, key));

/** Container annotations: only those matching the handler's `allowed` patterns, never berth's own keys. */
export function containerAnnotations(src: Readonly<Record<string, string>>, allowed: readonly string[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(src)) {
    if (k.startsWith('io.kubernetes.cri.') || !matchesAny(allowed, k)) continue;
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
