/**
 * Which cgroup hierarchy containers land in on this host, and where a container's cgroup files
 * are, so tests hold on cgroup v1, hybrid (v1 controllers + a unified tree beside them) and pure
 * v2 hosts (Debian 12's default) alike.
 *
 * The rule is the one runc and berth-shim follow: runc uses v2 only when /sys/fs/cgroup itself is
 * the cgroup2 mount (which has cgroup.controllers at its root); berth-shim reads v1 files when the
 * process has a v1 memory controller in /proc/<pid>/cgroup (src/cgroup-stats.ts isV1), which is
 * the case exactly when runc put it in v1 cgroups. test/unit/test-cgroup-helper.test.ts checks the
 * two answers agree on this host, and checks the v1 and v2 branches on recorded layouts.
 *
 * Every function takes the cgroup root as a parameter (default /sys/fs/cgroup) so the unit test
 * can point it at a recorded layout.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export type Hierarchy = 'v1' | 'v2';

export const CGROUP_ROOT = '/sys/fs/cgroup';

/** The hierarchy runc puts containers in under `root`. */
export function hierarchyAt(root = CGROUP_ROOT): Hierarchy {
  return existsSync(join(root, 'cgroup.controllers')) ? 'v2' : 'v1';
}

/** The hierarchy runc puts containers in here. */
export function hostHierarchy(): Hierarchy {
  return hierarchyAt(CGROUP_ROOT);
}

/**
 * A cgroup setting or counter a test reads, by what it means: the v1 controller and file, and
 * the v2 file (v2 has one directory for every controller).
 */
export const KNOBS = {
  procs: { controller: 'pids', v1: 'cgroup.procs', v2: 'cgroup.procs' },
  memoryLimit: { controller: 'memory', v1: 'memory.limit_in_bytes', v2: 'memory.max' },
  memoryUsage: { controller: 'memory', v1: 'memory.usage_in_bytes', v2: 'memory.current' },
  pidsMax: { controller: 'pids', v1: 'pids.max', v2: 'pids.max' },
  pidsCurrent: { controller: 'pids', v1: 'pids.current', v2: 'pids.current' },
  cpuQuota: { controller: 'cpu', v1: 'cpu.cfs_quota_us', v2: 'cpu.max' },
  cpuPeriod: { controller: 'cpu', v1: 'cpu.cfs_period_us', v2: 'cpu.max' },
  oomEvents: { controller: 'memory', v1: 'memory.oom_control', v2: 'memory.events' },
} as const;
export type Knob = keyof typeof KNOBS;

/** A v1 controller's mount: its own name, or the co-mount it is part of (cpu,cpuacct). */
function controllerMount(root: string, controller: string, joint = controller): string {
  if (existsSync(join(root, controller))) return join(root, controller);
  if (existsSync(join(root, joint))) return join(root, joint);
  const co = (() => {
    try {
      return readdirSync(root).find((d) => d.split(',').includes(controller));
    } catch {
      return undefined;
    }
  })();
  return join(root, co ?? controller);
}

/**
 * A cgroup file of a container by its OCI cgroupsPath (absolute, as berth and these tests set
 * it): on v1 `<controller mount>/<path>/<v1 file>`, on v2 `<path>/<v2 file>`.
 */
export function knobFileOfPath(cgroupsPath: string, knob: Knob, root = CGROUP_ROOT): string {
  const k = KNOBS[knob];
  return hierarchyAt(root) === 'v1' ? join(controllerMount(root, k.controller), cgroupsPath, k.v1) : join(root, cgroupsPath, k.v2);
}

/**
 * The same for a process, from what its /proc/<pid>/cgroup says (`procText`, read from the
 * process when not given): the line of the controller on v1, the `0::` line on v2.
 */
export function knobFileOfPid(pid: number, knob: Knob, root = CGROUP_ROOT, procText?: string): string {
  const k = KNOBS[knob];
  const lines = (procText ?? readFileSync(`/proc/${pid}/cgroup`, 'utf8')).split('\n').filter(Boolean);
  if (hierarchyAt(root) === 'v1') {
    const line = lines.find((l) => l.split(':')[1]!.split(',').includes(k.controller));
    if (!line) throw new Error(`process ${pid} has no v1 ${k.controller} cgroup: ${lines.join(' | ')}`);
    const [, ctrls, path] = line.split(':') as [string, string, string];
    return join(controllerMount(root, k.controller, ctrls), path, k.v1);
  }
  const line = lines.find((l) => l.startsWith('0::'));
  if (!line) throw new Error(`process ${pid} has no unified cgroup: ${lines.join(' | ')}`);
  return join(root, line.slice(3), k.v2);
}

/** "max" (or v1's unlimited values) as 'max', otherwise the number. */
export type Limit = bigint | 'max';

/** v1 reports "no memory limit" as the page counter's maximum (PAGE_COUNTER_MAX pages), not "max". */
const V1_NO_MEMORY_LIMIT = 0x7ffffffffffff000n;

/** A knob's value as a user reads it, the same on both hierarchies (cpu quota/period split out of cpu.max). */
export function readKnob(file: string, knob: Knob, hierarchy: Hierarchy): Limit {
  const text = readFileSync(file, 'utf8').trim();
  switch (knob) {
    case 'cpuQuota':
    case 'cpuPeriod': {
      if (hierarchy === 'v1') return knob === 'cpuQuota' && text === '-1' ? 'max' : BigInt(text);
      const [quota, period] = text.split(/\s+/) as [string, string];
      if (knob === 'cpuPeriod') return BigInt(period);
      return quota === 'max' ? 'max' : BigInt(quota);
    }
    case 'oomEvents': {
      // the oom_kill counter: a line of memory.oom_control (v1) or memory.events (v2)
      const line = text.split('\n').find((l) => l.startsWith('oom_kill '));
      return BigInt(line?.split(/\s+/)[1] ?? '0');
    }
    case 'procs':
      throw new Error('cgroup.procs is a list: read it with readProcs');
    default: {
      if (text === 'max') return 'max';
      const n = BigInt(text);
      return knob === 'memoryLimit' && hierarchy === 'v1' && n >= V1_NO_MEMORY_LIMIT ? 'max' : n;
    }
  }
}

/** A container's setting by cgroupsPath, as readKnob gives it. */
export function readKnobOfPath(cgroupsPath: string, knob: Knob, root = CGROUP_ROOT): Limit {
  return readKnob(knobFileOfPath(cgroupsPath, knob, root), knob, hierarchyAt(root));
}

/** A process's cgroup setting, as readKnob gives it. */
export function readKnobOfPid(pid: number, knob: Knob, root = CGROUP_ROOT, procText?: string): Limit {
  return readKnob(knobFileOfPid(pid, knob, root, procText), knob, hierarchyAt(root));
}

/** The pids in a cgroup.procs file. */
export function readProcs(file: string): number[] {
  return readFileSync(file, 'utf8').split('\n').filter(Boolean).map(Number);
}

/**
 * A shell command that prints the container's memory limit in bytes from inside it, for the
 * hierarchy it runs on: v1 memory.limit_in_bytes of the memory controller runc mounts at
 * /sys/fs/cgroup/memory; v2 memory.max of the process's own cgroup, found from /proc/self/cgroup
 * (without a cgroup namespace /sys/fs/cgroup is the whole tree and its root has no memory.max;
 * with one, the path is "/"). `root` and `self` are for the unit test.
 */
export function memoryLimitInside(hierarchy: Hierarchy = hostHierarchy(), root = CGROUP_ROOT, self = '/proc/self/cgroup'): string {
  if (hierarchy === 'v1') return `cat ${root}/memory/memory.limit_in_bytes`;
  return `cat "${root}$(sed -n 's/^0:://p' ${self})/memory.max"`;
}

/** Removes every cgroup directory (each v1 controller, the unified tree, and a pure v2 root) named by `parent`, deepest first. Returns what could not be removed. */
export function removeCgroupTree(parent: string, root = CGROUP_ROOT): string[] {
  const roots = [root];
  try {
    for (const c of readdirSync(root, { withFileTypes: true })) if (c.isDirectory() || c.isSymbolicLink()) roots.push(join(root, c.name));
  } catch {
    return [];
  }
  const left: string[] = [];
  for (const r of roots) {
    const base = join(r, parent);
    if (!existsSync(base) || base === r) continue;
    const rmTree = (d: string): void => {
      let entries: string[] = [];
      try {
        entries = readdirSync(d, { withFileTypes: true })
          .filter((e) => e.isDirectory())
          .map((e) => e.name);
      } catch {
        return;
      }
      for (const e of entries) rmTree(join(d, e));
      try {
        rmdirSync(d);
      } catch {
        if (existsSync(d)) left.push(d);
      }
    };
    rmTree(base);
  }
  return left;
}

/**
 * removeCgroupTree until nothing is left or `ms` pass: a cgroup can be removed only once its
 * last process has left it, which follows the process's death by a moment.
 */
export async function removeCgroupTreeSettled(parent: string, ms = 5000, root = CGROUP_ROOT): Promise<string[]> {
  const end = Date.now() + ms;
  for (;;) {
    const left = removeCgroupTree(parent, root);
    if (left.length === 0 || Date.now() > end) return left;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A recorded cgroup v2 container directory (values from a real 6.1 kernel, trimmed). */
export function recordedV2(dir: string): void {
  mkdirSync(dir, { recursive: true });
  const files: Record<string, string> = {
    'cpu.stat': 'usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\nnr_periods 10\nnr_throttled 2\nthrottled_usec 5000\n',
    'memory.current': '10485760\n',
    'memory.max': '67108864\n',
    'memory.swap.current': '0\n',
    'memory.swap.max': 'max\n',
    'memory.stat':
      'anon 4194304\nfile 2097152\nkernel_stack 49152\nslab 262144\nsock 0\nshmem 4096\nfile_mapped 1048576\nfile_dirty 0\nfile_writeback 0\nanon_thp 0\n' +
      'inactive_anon 3145728\nactive_anon 1048576\ninactive_file 1048576\nactive_file 1048576\nunevictable 0\nslab_reclaimable 131072\nslab_unreclaimable 131072\npgfault 12345\npgmajfault 6\n',
    'memory.events': 'low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n',
    'pids.current': '3\n',
    'pids.max': 'max\n',
  };
  for (const [f, text] of Object.entries(files)) writeFileSync(join(dir, f), text);
}
