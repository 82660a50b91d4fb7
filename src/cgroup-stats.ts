/**
 * Reading a container's cgroup: where it is (from /proc/<pid>/cgroup, recorded once the init
 * process exists, because runc may place it anywhere per cgroupsPath / systemd), its metrics
 * in containerd's io.containerd.cgroups.v1 / v2 Metrics shapes, and its OOM-kill counter.
 * Used by berth-shim (Stats, OOM detection) and by berthd, which reads the usage summary the
 * CRI stats need straight from the cgroup the shim recorded (usageSummary).
 *
 * cgroup v1 is used when the process has a v1 memory controller path; otherwise the unified
 * (v2) path, at /sys/fs/cgroup (pure v2) or /sys/fs/cgroup/unified (hybrid).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Metrics as plain objects in the shape of io.containerd.cgroups.v1/v2 Metrics (lowerCamel
 * field names, bigint counters), encoded with V1MetricsS / V2MetricsS from task-api.ts.
 */
export type CgroupMetrics = Record<string, unknown>;
type MemoryEntry = { usage: bigint; limit: bigint; max: bigint; failcnt: bigint };

const ROOT = '/sys/fs/cgroup';

export interface CgroupLocation {
  /** controller name → absolute directory (v1). Empty when the process lives in cgroup v2 only. */
  v1: Map<string, string>;
  /** absolute directory in the unified hierarchy, if mounted. */
  v2: string | undefined;
}

/** Parse /proc/<pid>/cgroup text into absolute directories. */
export function parseProcCgroup(text: string, root = ROOT): CgroupLocation {
  const v1 = new Map<string, string>();
  let v2: string | undefined;
  for (const line of text.split('\n')) {
    if (!line) continue;
    const first = line.indexOf(':');
    const second = line.indexOf(':', first + 1);
    const ctrls = line.slice(first + 1, second);
    const path = line.slice(second + 1);
    if (ctrls === '') {
      const unified = existsSync(join(root, 'unified')) ? join(root, 'unified') : root;
      v2 = join(unified, path);
      continue;
    }
    for (const c of ctrls.split(',')) {
      const name = c.startsWith('name=') ? c.slice(5) : c;
      // Co-mounted controllers (cpu,cpuacct) may be mounted under the joint name or alone.
      const joint = join(root, ctrls.replace(/^name=/, ''));
      const dir = existsSync(join(root, name)) ? join(root, name, path) : join(joint, path);
      v1.set(name, dir);
    }
  }
  return { v1, v2 };
}

export function locateCgroup(pid: number): CgroupLocation {
  return parseProcCgroup(readFileSync(`/proc/${pid}/cgroup`, 'utf8'));
}

export function isV1(loc: CgroupLocation): boolean {
  return loc.v1.has('memory');
}

function readText(dir: string | undefined, file: string): string | undefined {
  if (!dir) return undefined;
  try {
    return readFileSync(join(dir, file), 'utf8');
  } catch {
    return undefined;
  }
}

function readU64(dir: string | undefined, file: string): bigint {
  const t = readText(dir, file)?.trim();
  if (!t || t === 'max') return t === 'max' ? 0xffffffffffffffffn : 0n;
  try {
    return BigInt(t.split(/\s/)[0] ?? '0');
  } catch {
    return 0n;
  }
}

/** "key value" lines → map. */
export function parseKv(text: string | undefined): Map<string, bigint> {
  const m = new Map<string, bigint>();
  if (!text) return m;
  for (const line of text.split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (!k || v === undefined) continue;
    try {
      m.set(k, BigInt(v));
    } catch {
      // not a number: skip
    }
  }
  return m;
}

/** The OOM-kill counter of the container's memory cgroup (v1 memory.oom_control, v2 memory.events). */
export function oomKillCount(loc: CgroupLocation): bigint {
  if (isV1(loc)) return parseKv(readText(loc.v1.get('memory'), 'memory.oom_control')).get('oom_kill') ?? 0n;
  return parseKv(readText(loc.v2, 'memory.events')).get('oom_kill') ?? 0n;
}

const USER_HZ = 100n;

export function statsV1(loc: CgroupLocation): CgroupMetrics {
  const mem = loc.v1.get('memory');
  const cpuacct = loc.v1.get('cpuacct');
  const cpu = loc.v1.get('cpu');
  const pids = loc.v1.get('pids');
  const ms = parseKv(readText(mem, 'memory.stat'));
  const g = (k: string): bigint => ms.get(k) ?? 0n;
  const entry = (prefix: string): MemoryEntry => ({
    usage: readU64(mem, `${prefix}.usage_in_bytes`),
    limit: readU64(mem, `${prefix}.limit_in_bytes`),
    max: readU64(mem, `${prefix}.max_usage_in_bytes`),
    failcnt: readU64(mem, `${prefix}.failcnt`),
  });
  const cpuStat = parseKv(readText(cpuacct, 'cpuacct.stat'));
  const perCpu = (readText(cpuacct, 'cpuacct.usage_percpu') ?? '')
    .trim()
    .split(/\s+/)
    .filter(Boolean)
    .map((v) => BigInt(v));
  const throttle = parseKv(readText(cpu, 'cpu.stat'));
  const oom = parseKv(readText(mem, 'memory.oom_control'));
  const pidsMax = readText(pids, 'pids.max')?.trim();
  return {
    pids: { current: readU64(pids, 'pids.current'), limit: !pidsMax || pidsMax === 'max' ? 0n : BigInt(pidsMax) },
    cpu: {
      usage: {
        total: readU64(cpuacct, 'cpuacct.usage'),
        // cpuacct.stat counts USER_HZ ticks; containerd reports nanoseconds.
        user: ((cpuStat.get('user') ?? 0n) * 1_000_000_000n) / USER_HZ,
        kernel: ((cpuStat.get('system') ?? 0n) * 1_000_000_000n) / USER_HZ,
        perCpu,
      },
      throttling: {
        periods: throttle.get('nr_periods') ?? 0n,
        throttledPeriods: throttle.get('nr_throttled') ?? 0n,
        throttledTime: throttle.get('throttled_time') ?? 0n,
      },
    },
    memory: {
      cache: g('cache'),
      rss: g('rss'),
      rssHuge: g('rss_huge'),
      mappedFile: g('mapped_file'),
      dirty: g('dirty'),
      writeback: g('writeback'),
      pgPgIn: g('pgpgin'),
      pgPgOut: g('pgpgout'),
      pgFault: g('pgfault'),
      pgMajFault: g('pgmajfault'),
      inactiveAnon: g('inactive_anon'),
      activeAnon: g('active_anon'),
      inactiveFile: g('inactive_file'),
      activeFile: g('active_file'),
      unevictable: g('unevictable'),
      hierarchicalMemoryLimit: g('hierarchical_memory_limit'),
      hierarchicalSwapLimit: g('hierarchical_memsw_limit'),
      totalCache: g('total_cache'),
      totalRss: g('total_rss'),
      totalRssHuge: g('total_rss_huge'),
      totalMappedFile: g('total_mapped_file'),
      totalDirty: g('total_dirty'),
      totalWriteback: g('total_writeback'),
      totalPgPgIn: g('total_pgpgin'),
      totalPgPgOut: g('total_pgpgout'),
      totalPgFault: g('total_pgfault'),
      totalPgMajFault: g('total_pgmajfault'),
      totalInactiveAnon: g('total_inactive_anon'),
      totalActiveAnon: g('total_active_anon'),
      totalInactiveFile: g('total_inactive_file'),
      totalActiveFile: g('total_active_file'),
      totalUnevictable: g('total_unevictable'),
      usage: entry('memory'),
      swap: entry('memory.memsw'),
      kernel: entry('memory.kmem'),
      kernelTcp: entry('memory.kmem.tcp'),
    },
    memoryOomControl: {
      oomKillDisable: oom.get('oom_kill_disable') ?? 0n,
      underOom: oom.get('under_oom') ?? 0n,
      oomKill: oom.get('oom_kill') ?? 0n,
    },
  };
}

export function statsV2(loc: CgroupLocation): CgroupMetrics {
  const d = loc.v2;
  const ms = parseKv(readText(d, 'memory.stat'));
  const g = (k: string): bigint => ms.get(k) ?? 0n;
  const cs = parseKv(readText(d, 'cpu.stat'));
  const ev = parseKv(readText(d, 'memory.events'));
  const max = (f: string): bigint => {
    const t = readText(d, f)?.trim();
    return !t || t === 'max' ? 0xffffffffffffffffn : BigInt(t);
  };
  return {
    pids: { current: readU64(d, 'pids.current'), limit: readText(d, 'pids.max')?.trim() === 'max' ? 0n : readU64(d, 'pids.max') },
    cpu: {
      usageUsec: cs.get('usage_usec') ?? 0n,
      userUsec: cs.get('user_usec') ?? 0n,
      systemUsec: cs.get('system_usec') ?? 0n,
      nrPeriods: cs.get('nr_periods') ?? 0n,
      nrThrottled: cs.get('nr_throttled') ?? 0n,
      throttledUsec: cs.get('throttled_usec') ?? 0n,
    },
    memory: {
      anon: g('anon'),
      file: g('file'),
      kernelStack: g('kernel_stack'),
      slab: g('slab'),
      sock: g('sock'),
      shmem: g('shmem'),
      fileMapped: g('file_mapped'),
      fileDirty: g('file_dirty'),
      fileWriteback: g('file_writeback'),
      anonThp: g('anon_thp'),
      inactiveAnon: g('inactive_anon'),
      activeAnon: g('active_anon'),
      inactiveFile: g('inactive_file'),
      activeFile: g('active_file'),
      unevictable: g('unevictable'),
      slabReclaimable: g('slab_reclaimable'),
      slabUnreclaimable: g('slab_unreclaimable'),
      pgfault: g('pgfault'),
      pgmajfault: g('pgmajfault'),
      usage: readU64(d, 'memory.current'),
      usageLimit: max('memory.max'),
      swapUsage: readU64(d, 'memory.swap.current'),
      swapLimit: max('memory.swap.max'),
    },
    memoryEvents: {
      low: ev.get('low') ?? 0n,
      high: ev.get('high') ?? 0n,
      max: ev.get('max') ?? 0n,
      oom: ev.get('oom') ?? 0n,
      oomKill: ev.get('oom_kill') ?? 0n,
    },
  };
}

/**
 * The part of the metrics the CRI's container and pod stats use (CPU time, memory usage,
 * limit, working set inputs, RSS, page faults, pids), in the same v1 / v2 Metrics shapes with
 * only those fields: 4–5 file reads instead of the ~25 of statsV1. The fields are read the
 * way statsV1 / statsV2 read them, so a sample from either agrees.
 */
export function usageSummary(loc: CgroupLocation): { cgroup: 'v1' | 'v2'; metrics: CgroupMetrics } {
  if (isV1(loc)) {
    const mem = loc.v1.get('memory');
    const ms = parseKv(readText(mem, 'memory.stat'));
    const g = (k: string): bigint => ms.get(k) ?? 0n;
    return {
      cgroup: 'v1',
      metrics: {
        pids: { current: readU64(loc.v1.get('pids'), 'pids.current') },
        cpu: { usage: { total: readU64(loc.v1.get('cpuacct'), 'cpuacct.usage') } },
        memory: {
          rss: g('rss'),
          pgFault: g('pgfault'),
          pgMajFault: g('pgmajfault'),
          inactiveFile: g('inactive_file'),
          totalRss: g('total_rss'),
          totalPgFault: g('total_pgfault'),
          totalPgMajFault: g('total_pgmajfault'),
          totalInactiveFile: g('total_inactive_file'),
          usage: { usage: readU64(mem, 'memory.usage_in_bytes'), limit: readU64(mem, 'memory.limit_in_bytes') },
        },
      },
    };
  }
  const d = loc.v2;
  const ms = parseKv(readText(d, 'memory.stat'));
  const g = (k: string): bigint => ms.get(k) ?? 0n;
  const limit = readText(d, 'memory.max')?.trim();
  return {
    cgroup: 'v2',
    metrics: {
      pids: { current: readU64(d, 'pids.current') },
      cpu: { usageUsec: parseKv(readText(d, 'cpu.stat')).get('usage_usec') ?? 0n },
      memory: {
        anon: g('anon'),
        inactiveFile: g('inactive_file'),
        pgfault: g('pgfault'),
        pgmajfault: g('pgmajfault'),
        usage: readU64(d, 'memory.current'),
        usageLimit: !limit || limit === 'max' ? 0xffffffffffffffffn : BigInt(limit),
      },
    },
  };
}

/** Whether the cgroup's directory (v1: the memory controller's) still exists. */
export function cgroupExists(loc: CgroupLocation): boolean {
  const dir = isV1(loc) ? loc.v1.get('memory') : loc.v2;
  return dir !== undefined && existsSync(dir);
}
