/**
 * The one place that loads koffi and glibc, for the syscalls Node lacks (mount, mknod,
 * xattrs, syncfs, prctl, waitpid, SCM_RIGHTS, SO_PEERCRED…). Loaded on first use, not at
 * import: koffi is a native addon (~8 ms) that short-lived processes should not pay for.
 * Each user declares its own functions on `lib`; both are shared process-wide.
 */
import { createRequire } from 'node:module';
import { constants as osConstants } from 'node:os';
import { dirname, join } from 'node:path';

export type Koffi = typeof import('koffi');
export type LibC = ReturnType<Koffi['load']>;

// Process-wide: the one koffi/glibc handle of this process, loaded on first use.
let loaded: { koffi: Koffi; lib: LibC } | undefined;

/**
 * The koffi addon itself. koffi's index.js also pulls in its installer's modules (https, tls,
 * zlib, crypto: ~1.5 MiB in every shim process) just to find the addon; the addon exposes the
 * same API, so it is loaded from its known place, and through index.js only if that fails.
 */
function loadKoffi(): Koffi {
  const require = createRequire(import.meta.url);
  try {
    const dir = dirname(require.resolve('koffi'));
    return require(join(dir, 'build', 'koffi', `${process.platform}_${process.arch}`, 'koffi.node')) as Koffi;
  } catch {
    return require('koffi') as Koffi;
  }
}

/** koffi and libc.so.6; throws when koffi cannot load (non-glibc host, missing addon). */
export function libc(): { koffi: Koffi; lib: LibC } {
  if (!loaded) {
    const koffi = loadKoffi();
    loaded = { koffi, lib: koffi.load('libc.so.6') };
  }
  return loaded;
}

const errnoNames = new Map<number, string>(Object.entries(osConstants.errno).map(([name, num]) => [num as number, name]));

/** The name of an errno value (`ENOENT`), or undefined for one Node does not know. */
export function errnoName(errno: number): string | undefined {
  return errnoNames.get(errno);
}

/** Builds an fs-style error (`code`, `errno`, `syscall`, `path`) from an errno a libc call left. */
export function errnoError(op: string, path: string, errno: number): NodeJS.ErrnoException {
  const code = errnoNames.get(errno) ?? `E${errno}`;
  const e = new Error(`${code}: ${op} '${path}' failed (errno ${errno})`) as NodeJS.ErrnoException;
  e.code = code;
  e.errno = -errno;
  e.syscall = op;
  e.path = path;
  return e;
}
