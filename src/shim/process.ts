/**
 * The lifecycle of one process of a task (the container's init, or an exec), as an explicit
 * state machine. Every operation checks its transition and rejects an invalid one with
 * FailedPrecondition instead of inferring state from flags.
 *
 *   created ──start──▶ running ──exit──▶ stopped ──delete──▶ deleted
 *      │                 │  ▲                ▲
 *      │               pause resume          │
 *      │                 ▼  │                │
 *      │               paused ────exit───────┘   (pausing: transient, init only)
 *      └──────────────────delete (never started; runc delete --force)──▶ deleted
 */
import { errors } from '../errors.js';

export type ProcState = 'created' | 'running' | 'pausing' | 'paused' | 'stopped' | 'deleted';

const allowed: Record<ProcState, readonly ProcState[]> = {
  created: ['running', 'stopped', 'deleted'],
  running: ['pausing', 'paused', 'stopped'],
  pausing: ['paused', 'running', 'stopped'],
  paused: ['running', 'stopped'],
  stopped: ['deleted'],
  deleted: [],
};

export function canTransition(from: ProcState, to: ProcState): boolean {
  return allowed[from].includes(to);
}

export interface ExitStatus {
  status: number;
  exitedAt: Date;
}

export class Proc {
  private _state: ProcState = 'created';
  pid = 0;
  exit: ExitStatus | undefined;
  private readonly waiters: Array<(e: ExitStatus) => void> = [];
  /**
   * Set while Start runs. A process can exit (and be reaped) before `runc start|exec` has even
   * returned; its exit is held back until Start has recorded 'running' and published its
   * start event, so events and transitions keep their order (containerd does the same).
   */
  startGate: Promise<void> | undefined;

  constructor(
    readonly containerId: string,
    /** '' for the init process. */
    readonly execId: string,
    readonly stdio: { stdin: string; stdout: string; stderr: string; terminal: boolean },
  ) {}

  get state(): ProcState {
    return this._state;
  }

  get isInit(): boolean {
    return this.execId === '';
  }

  get label(): string {
    return this.isInit ? `container ${this.containerId}` : `exec ${this.execId} in ${this.containerId}`;
  }

  /** Throws FailedPrecondition unless the process is in one of `states`. */
  require(op: string, ...states: ProcState[]): void {
    if (!states.includes(this._state)) {
      throw errors.failedPrecondition('shim.bad_state', `cannot ${op} ${this.label}: it is ${this._state}`);
    }
  }

  transition(to: ProcState): void {
    if (this._state === to) return;
    if (!canTransition(this._state, to)) {
      throw errors.failedPrecondition('shim.bad_transition', `${this.label}: invalid transition ${this._state} → ${to}`);
    }
    this._state = to;
  }

  /** Record the exit (idempotent: the first exit wins) and release every Wait. */
  setExited(status: number, exitedAt: Date): void {
    if (this.exit) return;
    this.exit = { status, exitedAt };
    if (this._state !== 'deleted') this._state = 'stopped';
    for (const w of this.waiters.splice(0)) w(this.exit);
  }

  /** Resolves with the exit status once the process has exited. */
  wait(signal?: AbortSignal): Promise<ExitStatus> {
    if (this.exit) return Promise.resolve(this.exit);
    return new Promise((resolve, reject) => {
      const w = (e: ExitStatus): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve(e);
      };
      const onAbort = (): void => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(signal?.reason instanceof Error ? signal.reason : errors.canceled('shim.wait_canceled', 'wait canceled'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(w);
    });
  }
}
