/**
 * glibc malloc settings for berthd's memory (issue 14, item 5). Two things measured on a pull of
 * the 217 MiB bench image:
 * - Every thread that mallocs gets its own arena (unpack workers, libuv's pool), each keeping
 *   freed memory for itself: with the default limit (8 × cores) a pull peaked ~45 MiB higher.
 *   M_ARENA_MAX = 2 keeps the main arena and one shared by every other thread.
 * - Buffers freed after a pull stay in the arenas, so an idle daemon that once pulled kept the
 *   pull's peak. malloc_trim(0) after each pull gives it back to the kernel.
 * Both are no-ops (and log nothing) where koffi or glibc is absent.
 */
import { libc } from '../libc.js';

const M_ARENA_MAX = -8;

interface Fns {
  mallopt(param: number, value: number): number;
  malloc_trim(pad: number): number;
}
// Process-wide: glibc malloc tuning applies to the whole process; bound once.
let fns: Fns | null | undefined;

function load(): Fns | null {
  if (fns === undefined) {
    try {
      const { lib } = libc();
      fns = { mallopt: lib.func('int mallopt(int, int)') as Fns['mallopt'], malloc_trim: lib.func('int malloc_trim(size_t)') as Fns['malloc_trim'] };
    } catch {
      fns = null;
    }
  }
  return fns;
}

/** Caps malloc arenas; call before any worker thread starts. True when glibc took it. */
export function limitMallocArenas(max = 2): boolean {
  const f = load();
  return f !== null && f.mallopt(M_ARENA_MAX, max) === 1;
}

// Process-wide: one pending malloc_trim for the whole process (its heap is one).
let trimTimer: NodeJS.Timeout | undefined;

/**
 * Returns free malloc memory to the kernel a little after the last call (pulls that end
 * together trim once, after the unpack workers' buffers are freed too).
 */
export function trimMallocSoon(delayMs = 1000): void {
  if (load() === null) return;
  clearTimeout(trimTimer);
  trimTimer = setTimeout(() => fns?.malloc_trim(0), delayMs);
  trimTimer.unref();
}
