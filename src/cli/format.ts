/** Formatting shared by the pod/container verbs: relative times, state names, truncation. */
import { ContainerState, PodSandboxState } from '../api/cri/runtime/v1/api_pb.js';

/** "5 seconds ago", "3 minutes ago" … from a CRI timestamp in unix nanoseconds. */
export function ago(createdNanos: bigint, nowMs: number = Date.now()): string {
  if (createdNanos <= 0n) return 'unknown';
  const secs = Math.max(0, Math.floor((nowMs - Number(createdNanos / 1_000_000n)) / 1000));
  const unit = (n: number, u: string) => `${n} ${u}${n === 1 ? '' : 's'} ago`;
  if (secs < 1) return 'Less than a second ago';
  if (secs < 60) return unit(secs, 'second');
  if (secs < 3600) return unit(Math.floor(secs / 60), 'minute');
  if (secs < 86400) return unit(Math.floor(secs / 3600), 'hour');
  if (secs < 86400 * 14) return unit(Math.floor(secs / 86400), 'day');
  return unit(Math.floor(secs / (86400 * 7)), 'week');
}

const CONTAINER_STATES: Record<ContainerState, string> = {
  [ContainerState.CONTAINER_CREATED]: 'Created',
  [ContainerState.CONTAINER_RUNNING]: 'Running',
  [ContainerState.CONTAINER_EXITED]: 'Exited',
  [ContainerState.CONTAINER_UNKNOWN]: 'Unknown',
};

export function containerStateName(s: ContainerState): string {
  return CONTAINER_STATES[s] ?? `State(${s})`;
}

export function podStateName(s: PodSandboxState): string {
  return s === PodSandboxState.SANDBOX_READY ? 'Ready' : s === PodSandboxState.SANDBOX_NOTREADY ? 'NotReady' : `State(${s})`;
}

/** Parses a --state filter for containers (created, running, exited, unknown; any case). */
export function parseContainerState(s: string): ContainerState | undefined {
  const k = s.toLowerCase().replace(/^container_/, '');
  const m: Record<string, ContainerState> = {
    created: ContainerState.CONTAINER_CREATED,
    running: ContainerState.CONTAINER_RUNNING,
    exited: ContainerState.CONTAINER_EXITED,
    unknown: ContainerState.CONTAINER_UNKNOWN,
  };
  return m[k];
}

/** Parses a --state filter for pods (ready, notready; any case). */
export function parsePodState(s: string): PodSandboxState | undefined {
  const k = s
    .toLowerCase()
    .replace(/^sandbox_/, '')
    .replace(/[-_]/g, '');
  if (k === 'ready') return PodSandboxState.SANDBOX_READY;
  if (k === 'notready') return PodSandboxState.SANDBOX_NOTREADY;
  return undefined;
}

/** Ids as shown in tables (13 characters, as crictl). */
export function truncId(id: string): string {
  return id.slice(0, 13);
}

/** Image references as shown in tables: digests shortened, tags kept. */
export function shortImage(ref: string): string {
  const m = /^sha256:([0-9a-f]{64})$/.exec(ref);
  return m ? m[1]!.slice(0, 13) : ref;
}

/** Label selector match (all k=v pairs must be present). */
export function labelsMatch(labels: Record<string, string>, selector: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}
