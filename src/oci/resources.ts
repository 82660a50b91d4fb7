/**
 * CRI LinuxContainerResources → OCI linux.resources and process.oomScoreAdj.
 * Zero means "not set" for every numeric CRI field, as in containerd.
 */
import type { LinuxContainerResources } from '../api/cri/runtime/v1/api_pb.js';
import type { LinuxResources } from './spec.js';
import { int64InRange, invalid, MAX_SAFE, noNul } from './values.js';

export interface ResourceOptions {
  /** memory.memsw.limit_in_bytes (v1) / memory.swap.max (v2) exists: swap limits are written. */
  swapControllerAvailable?: boolean;
  /** The hugetlb controller exists; without it hugepage limits are skipped (containerd tolerates). */
  hugetlbAvailable?: boolean;
  /** pids limit for every container (runtime option; CRI carries none). */
  pidsLimit?: number;
  /**
   * The daemon's own oom_score_adj when restricting: a container may not get a lower (more
   * protected) score than the daemon, so lower values are raised to it.
   */
  restrictOomScoreAdj?: number;
}

const CPUSET_RE = /^[0-9]{1,5}(-[0-9]{1,5})?(,[0-9]{1,5}(-[0-9]{1,5})?)*$/;
const PAGESIZE_RE = /^[0-9]{1,10}(KB|MB|GB|TB|PB)$/;
// cgroup v2 interface file names ("memory.high", "cpu.max", "io.weight"): never a path.
const UNIFIED_KEY_RE = /^[a-z0-9_]+(\.[a-z0-9_]+)+$/;

export const OOM_SCORE_ADJ_MIN = -1000;
export const OOM_SCORE_ADJ_MAX = 1000;

/** Raises `preferred` to the daemon's own score when restriction is on (containerd's rule). */
export function clampOomScoreAdj(preferred: number, restrictTo?: number): number {
  if (restrictTo === undefined) return preferred;
  return preferred < restrictTo ? restrictTo : preferred;
}

export interface ResourcePlan {
  resources: LinuxResources;
  oomScoreAdj?: number;
}

/** Builds resources on top of `base` (its device rules are kept). */
export function planResources(r: LinuxContainerResources | undefined, base: LinuxResources, opts: ResourceOptions, field: string): ResourcePlan {
  const resources: LinuxResources = { ...base };
  if (opts.pidsLimit !== undefined) {
    if (!Number.isInteger(opts.pidsLimit)) throw invalid('runtime option pids_limit', 'must be an integer');
    resources.pids = { limit: opts.pidsLimit };
  }
  if (r === undefined) return { resources };

  const cpu: NonNullable<LinuxResources['cpu']> = {};
  const period = int64InRange(r.cpuPeriod, `${field}.cpu_period`, 0, MAX_SAFE);
  const quota = int64InRange(r.cpuQuota, `${field}.cpu_quota`, -1, MAX_SAFE);
  const shares = int64InRange(r.cpuShares, `${field}.cpu_shares`, 0, MAX_SAFE);
  if (period !== 0) cpu.period = period;
  if (quota !== 0) cpu.quota = quota;
  if (shares !== 0) cpu.shares = shares;
  if (r.cpusetCpus !== '') {
    if (!CPUSET_RE.test(r.cpusetCpus)) throw invalid(`${field}.cpuset_cpus`, `invalid cpu list ${JSON.stringify(r.cpusetCpus)}`);
    cpu.cpus = r.cpusetCpus;
  }
  if (r.cpusetMems !== '') {
    if (!CPUSET_RE.test(r.cpusetMems)) throw invalid(`${field}.cpuset_mems`, `invalid memory node list ${JSON.stringify(r.cpusetMems)}`);
    cpu.mems = r.cpusetMems;
  }
  resources.cpu = cpu;

  const memory: NonNullable<LinuxResources['memory']> = {};
  const limit = int64InRange(r.memoryLimitInBytes, `${field}.memory_limit_in_bytes`, 0, MAX_SAFE);
  const swap = int64InRange(r.memorySwapLimitInBytes, `${field}.memory_swap_limit_in_bytes`, -1, MAX_SAFE);
  if (limit !== 0) {
    memory.limit = limit;
    // memory+swap equal to memory: no swapping unless a swap limit is asked for.
    if (swap === 0 && opts.swapControllerAvailable) memory.swap = limit;
  }
  if (swap !== 0 && opts.swapControllerAvailable) memory.swap = swap;
  resources.memory = memory;

  if (r.hugepageLimits.length > 0 && opts.hugetlbAvailable !== false) {
    resources.hugepageLimits = r.hugepageLimits.map((h, i) => {
      if (!PAGESIZE_RE.test(h.pageSize)) throw invalid(`${field}.hugepage_limits[${i}].page_size`, `invalid page size ${JSON.stringify(h.pageSize)}`);
      return { pageSize: h.pageSize, limit: int64InRange(h.limit, `${field}.hugepage_limits[${i}].limit`, 0, MAX_SAFE) };
    });
  }

  const unifiedKeys = Object.keys(r.unified);
  if (unifiedKeys.length > 0) {
    const unified: Record<string, string> = { ...(base.unified ?? {}) };
    for (const k of unifiedKeys) {
      if (!UNIFIED_KEY_RE.test(k)) throw invalid(`${field}.unified[${JSON.stringify(k)}]`, 'invalid cgroup v2 file name');
      unified[k] = noNul(r.unified[k]!, `${field}.unified[${JSON.stringify(k)}]`);
    }
    resources.unified = unified;
  }

  const adj = int64InRange(r.oomScoreAdj, `${field}.oom_score_adj`, OOM_SCORE_ADJ_MIN, OOM_SCORE_ADJ_MAX);
  return { resources, oomScoreAdj: clampOomScoreAdj(adj, opts.restrictOomScoreAdj) };
}
