/**
 * Idle timeout of one streaming session, whatever its transport: a session whose socket moved
 * no byte either way for `idleMs` is closed (kubelet's streaming server does the same per SPDY
 * or WebSocket connection, default 4 h). PINGs count as traffic there and here.
 *
 * Resetting a timer on every frame would cost a timer operation per chunk; instead the socket's
 * byte counters are sampled every quarter of the timeout, and the session is idle once four
 * samples in a row saw no change: it is closed between `idleMs` and 1.25 × `idleMs` after its
 * last byte.
 */

/** What the watcher samples: the socket's cumulative byte counters. */
export type TrafficCounter = () => number;

export class IdleWatcher {
  private timer: NodeJS.Timeout | undefined;
  private last: number;
  private quietChecks = 0;

  constructor(
    private readonly traffic: TrafficCounter,
    idleMs: number,
    private readonly onIdle: () => void,
  ) {
    this.last = traffic();
    if (idleMs <= 0) return;
    this.timer = setInterval(() => this.check(), Math.max(1, Math.floor(idleMs / 4)));
    this.timer.unref();
  }

  private check(): void {
    if (!this.timer) return;
    const now = this.traffic();
    if (now !== this.last) {
      this.last = now;
      this.quietChecks = 0;
      return;
    }
    if (++this.quietChecks < 4) return;
    this.stop();
    this.onIdle();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}

/** Bytes read plus written on a socket (net.Socket counters; 0 for other duplexes). */
export function socketTraffic(socket: unknown): TrafficCounter {
  const s = socket as { bytesRead?: number; bytesWritten?: number };
  return () => (s.bytesRead ?? 0) + (s.bytesWritten ?? 0);
}
