/**
 * The one place that loads koffi and glibc, for the syscalls Node lacks (mount, mknod,
 * xattrs, syncfs, prctl, waitpid, SCM_RIGHTS, SO_PEERCRED…). Loaded on first use, not at
 * import: koffi is a native addon (~8 ms) that short-lived processes should not pay for.
 * Each user declares its own functions on `lib`; both are shared process-wide.
 */
import { createRequire } from 'node:module';

export type Koffi = typeof import('koffi');
export type LibC = ReturnType<Koffi['load']>;

let loaded: { koffi: Koffi; lib: LibC } | undefined;

/** koffi and libc.so.6; throws when koffi cannot load (non-glibc host, missing addon). */
export function libc(): { koffi: Koffi; lib: LibC } {
  if (!loaded) {
    const koffi = createRequire(import.meta.url)('koffi') as Koffi;
    loaded = { koffi, lib: koffi.load('libc.so.6') };
  }
  return loaded;
}
