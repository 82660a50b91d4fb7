/**
 * Scavenges (V8 minor GCs) paced by the bytes a thread moves through large buffers (issue 14,
 * item 5). An unpack worker gets a new 256 KiB buffer per zlib output chunk, each dead moments
 * later. V8 frees a dead young ArrayBuffer only when it scavenges, and it scavenges when the
 * young generation fills with JS objects, not with ArrayBuffer memory: where little JS runs per
 * buffer (the inflate of a layer of large files) tens of MiB of dead buffers piled up in each
 * worker until the external-memory limit started a full GC. A scavenge of a young generation
 * holding little live data costs well under a millisecond (measured: 0.24 ms in a worker).
 * (The same on the main thread, per 4 MiB downloaded, did not lower a pull's peak RSS:
 * measured, not kept.)
 *
 * `gc` is V8's own, taken from a fresh context after setting --expose-gc at run time (the
 * launcher's node flags do not survive scripts/install.sh, which rewrites the shebang). The
 * flag only adds `gc` to contexts created later; where it cannot be had, this does nothing.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type MinorGc = (o: { type: 'minor' }) => void;

// Process-wide: one gc function per isolate (this thread), looked up on first use.
let found: MinorGc | null | undefined;

/** This thread's `gc`, or null when V8 does not hand it out. */
export function v8MinorGc(): MinorGc | null {
  if (found !== undefined) return found;
  found = (globalThis as { gc?: MinorGc }).gc ?? null;
  if (found === null) {
    try {
      setFlagsFromString('--expose-gc');
      const gc: unknown = runInNewContext('gc');
      if (typeof gc === 'function') found = gc as MinorGc;
    } catch {
      found = null;
    }
  }
  return found;
}

export class YoungGc {
  private bytes = 0;

  /** `every`: bytes passed between two scavenges. */
  constructor(
    private readonly every: number,
    private readonly gc: MinorGc | null = v8MinorGc(),
  ) {}

  /** Counts `n` bytes allocated and soon dead; scavenges once `every` have passed. */
  add(n: number): void {
    if (this.gc === null) return;
    this.bytes += n;
    if (this.bytes < this.every) return;
    this.bytes = 0;
    this.gc({ type: 'minor' });
  }
}
