/**
 * The pod sandbox record (version 2) and its state machine.
 *
 * A sandbox's life used to be spread over `state` plus untyped `extra.phase`,
 * `extra.networkDown`, `extra.pause` and `extra.exitStatus`; here every one of those is a typed
 * field, the states are explicit (creating → ready → notready, creating → notready) and
 * SandboxStore checks every update against the table below, as it does for containers.
 *
 * `leftover` names the resource undos that failed (CNI DEL, netns removal, unmount, …): a
 * record that has one stays NOTREADY and keeps its name, so a later StopPodSandbox,
 * RemovePodSandbox or recovery finishes the job instead of an IP or netns leaking with
 * nothing pointing at it (containerd keeps such a sandbox UNKNOWN).
 *
 * Records are versioned: `migrateSandboxRecordV1` turns what berth wrote before (no version
 * field) into version 2; db.ts applies it to every row once. A record written by a newer berth
 * is refused (`metadata.record_too_new`) rather than half understood.
 */
import { errors } from '../../errors.js';

export const SANDBOX_RECORD_VERSION = 2;

/**
 * creating: RunPodSandbox is building it (hidden from List/Status/Stop; recovery tears it down).
 * ready: the pod runs. notready: stopped, its pause exited, or an undo left something behind.
 */
export type SandboxState = 'creating' | 'ready' | 'notready';

/** Legal sandbox state transitions (explicit, checked on every update). */
export const sandboxTransitions: Readonly<Record<SandboxState, readonly SandboxState[]>> = {
  creating: ['ready', 'notready'],
  ready: ['notready'],
  notready: [],
};

/** Resource undos that can be left over (bookkeeping — name, record — is never left over). */
export type LeftoverStep = 'cni' | 'netns' | 'unpin' | 'shm' | 'pause-task' | 'snapshot' | 'sandbox-dirs';

export interface SandboxPins {
  net?: string;
  ipc?: string;
  uts?: string;
  user?: string;
}

export interface SandboxRecord {
  version: typeof SANDBOX_RECORD_VERSION;
  id: string;
  /** The reserved name (k8s_POD_name_namespace_uid_attempt). */
  name: string;
  meta: { name: string; namespace: string; uid: string; attempt: number };
  state: SandboxState;
  /** Unix nanoseconds, as a decimal string. */
  createdAt: string;
  runtimeHandler: string;
  /** runtime.v1.PodSandboxConfig, protobuf bytes in base64. */
  config: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  netnsPath?: string;
  ips: string[];
  /** Pause process pid (host pid namespace) while running. */
  pid?: number;
  /** Directory holding hostname, hosts, resolv.conf, shm. */
  sandboxDir: string;
  cgroupParent: string;
  /** CNI outcome kept for DEL and for status. */
  cni?: { result?: unknown; portMappings?: unknown[] };
  hostNetwork: boolean;
  hostIpc: boolean;
  /**
   * The pod's pinned namespace handles (network, IPC, UTS, user). Absent on records made
   * before namespaces were pinned: those pods hold everything in their pause process.
   */
  pins?: SandboxPins;
  /** Whether a pause container runs (pid mode POD). */
  pause: boolean;
  /** The pause container's rootfs snapshot key (= the sandbox id), sandbox image id and reference. */
  snapshotKey?: string;
  image?: string;
  imageRef?: string;
  /** CNI DEL done and netns removed (StopPodSandbox needs no network work). */
  networkDown: boolean;
  /** The pause's exit once it exited. */
  exit?: { status: number; at?: string };
  /** Resource undos that failed and are still to do (only on NOTREADY records). */
  leftover?: LeftoverStep[];
  /** Anything not modelled above, kept verbatim from older records. */
  extra: Record<string, unknown>;
}

export function checkSandboxTransition(id: string, from: SandboxState, to: SandboxState): void {
  if (from === to) return;
  if (!sandboxTransitions[from].includes(to)) {
    throw errors.failedPrecondition('sandbox.bad_transition', `pod sandbox ${id} is ${from}, cannot become ${to}`);
  }
}

/** Invariants every stored record holds, checked with the transition. */
export function checkSandboxRecord(r: SandboxRecord): void {
  if (r.leftover && r.leftover.length > 0 && r.state !== 'notready') {
    throw errors.failedPrecondition('sandbox.bad_transition', `pod sandbox ${r.id} has undone steps (${r.leftover.join(', ')}), cannot be ${r.state}`);
  }
}

/** A stored document → a version-2 record; v1 (no version) is migrated, newer ones refused. */
export function parseSandboxRecord(json: string): SandboxRecord {
  const raw = JSON.parse(json) as { version?: unknown; id?: unknown };
  const v = raw.version ?? 1;
  if (v === SANDBOX_RECORD_VERSION) return raw as SandboxRecord;
  if (v === 1) return migrateSandboxRecordV1(raw as Record<string, unknown>);
  throw errors.failedPrecondition(
    'metadata.record_too_new',
    `pod sandbox record ${String(raw.id)} has version ${String(v)}; this berth understands up to ${SANDBOX_RECORD_VERSION} (was the metadata written by a newer berthd?)`,
  );
}

/** What berth wrote before records had a version: phase, networkDown, pause, exitStatus … in `extra`. */
export function migrateSandboxRecordV1(old: Record<string, unknown>): SandboxRecord {
  const { phase, hostNetwork, hostIpc, pins, pause, snapshotKey, image, imageRef, networkDown, exitStatus, exitedAt, ...rest } = (old.extra ?? {}) as Record<
    string,
    unknown
  >;
  const r = { ...old } as Record<string, unknown> & Partial<SandboxRecord>;
  const out: SandboxRecord = {
    ...(r as unknown as SandboxRecord),
    version: SANDBOX_RECORD_VERSION,
    state: phase === 'creating' ? 'creating' : r.state === 'ready' ? 'ready' : 'notready',
    ips: Array.isArray(r.ips) ? r.ips : [],
    hostNetwork: hostNetwork === true,
    hostIpc: hostIpc === true,
    // Absent meant a pause ran (records older than pinned namespaces).
    pause: pause !== false,
    networkDown: networkDown === true,
    extra: rest,
  };
  if (pins && typeof pins === 'object') out.pins = pins as SandboxPins;
  if (typeof snapshotKey === 'string') out.snapshotKey = snapshotKey;
  if (typeof image === 'string') out.image = image;
  if (typeof imageRef === 'string') out.imageRef = imageRef;
  if (typeof exitStatus === 'number') out.exit = { status: exitStatus, ...(typeof exitedAt === 'string' ? { at: exitedAt } : {}) };
  return out;
}
