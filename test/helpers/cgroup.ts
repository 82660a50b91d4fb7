/**
 * Which cgroup hierarchy containers land in on this host, and where a container's cgroup files
 * are, so integration tests hold on cgroup v1, hybrid (v1 controllers + a unified tree beside
 * them) and pure v2 hosts alike. runc uses v1 whenever the v1 controllers are mounted, so the
 * answer follows /sys/fs/cgroup itself: pure v2 has cgroup.controllers at its root.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export type Hierarchy = 'v1' | 'v2';

const ROOT = '/sys/fs/cgroup';

/** The hierarchy runc puts containers in here. */
export function hostHierarchy(): Hierarchy {
  return existsSync(join(ROOT, 'cgroup.controllers')) ? 'v2' : 'v1';
}

/** Root of the unified tree: /sys/fs/cgroup on pure v2, /sys/fs/cgroup/unified on hybrid hosts. */
function unifiedRoot(): string {
  return hostHierarchy() === 'v2' ? ROOT : join(ROOT, 'unified');
}

/**
 * A cgroup file of a container by its OCI cgroupsPath (absolute, as berth and these tests set
 * it): on v1 `<controller>/<path>/<v1File>`, on v2 `<path>/<v2File>`.
 */
export function cgroupFileOfPath(cgroupsPath: string, controller: string, v1File: string, v2File: string): string {
  return hostHierarchy() === 'v1' ? join(ROOT, controller, cgroupsPath, v1File) : join(ROOT, cgroupsPath, v2File);
}

/** The same, for a running process: its own /proc/<pid>/cgroup says where it is. */
export function cgroupFileOfPid(pid: number, controller: string, v1File: string, v2File: string): string {
  const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n').filter(Boolean);
  if (hostHierarchy() === 'v1') {
    const line = lines.find((l) => l.split(':')[1]!.split(',').includes(controller));
    if (!line) throw new Error(`process ${pid} has no v1 ${controller} cgroup: ${lines.join(' | ')}`);
    return join(ROOT, controller, line.split(':')[2]!, v1File);
  }
  const line = lines.find((l) => l.startsWith('0::'));
  if (!line) throw new Error(`process ${pid} has no unified cgroup: ${lines.join(' | ')}`);
  return join(unifiedRoot(), line.slice(3), v2File);
}

/**
 * A shell command that prints the container's memory limit in bytes from inside it (its own
 * cgroup namespace): v1 memory.limit_in_bytes, or v2 memory.max ("max" printed as is).
 */
export const MEMORY_LIMIT_INSIDE = 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max';
