/**
 * Thin bindings to the few libc calls Node's fs module lacks (mknod, extended attributes),
 * loaded lazily through koffi so that importing this module never fails on its own.
 *
 * All calls are synchronous; each is a single cheap syscall. Errors come back as Node-style
 * errors carrying `code` (e.g. "EPERM") and `errno`, so callers can branch like on fs errors.
 */
import { errnoError, errnoName, libc as loadLibc } from '../../libc.js';

type KoffiModule = import('../../libc.js').Koffi;

interface LibcFns {
  mknod: (path: string, mode: number, dev: bigint) => number;
  lsetxattr: (path: string, name: string, value: Buffer, size: number, flags: number) => number;
  lgetxattr: (path: string, name: string, value: Buffer | null, size: number) => number;
  llistxattr: (path: string, list: Buffer | null, size: number) => number;
  koffi: KoffiModule;
}

// Process-wide: the libc functions (per thread: each worker loads its own), bound once.
let libc: LibcFns | null | undefined;
let loadError: unknown;

function load(): LibcFns | null {
  if (libc !== undefined) return libc;
  try {
    const { koffi, lib } = loadLibc();
    libc = {
      koffi,
      mknod: lib.func('int mknod(const char *path, uint32_t mode, uint64_t dev)') as LibcFns['mknod'],
      lsetxattr: lib.func('int lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags)') as LibcFns['lsetxattr'],
      lgetxattr: lib.func('intptr_t lgetxattr(const char *path, const char *name, void *value, size_t size)') as LibcFns['lgetxattr'],
      llistxattr: lib.func('intptr_t llistxattr(const char *path, void *list, size_t size)') as LibcFns['llistxattr'],
    };
  } catch (err) {
    loadError = err;
    libc = null;
  }
  return libc;
}

/** Whether the libc bindings could be loaded (false on non-glibc hosts without koffi support). */
export function syscallsAvailable(): boolean {
  return load() !== null;
}

function lib(op: string): LibcFns {
  const l = load();
  if (!l) {
    const e = new Error(`${op}: libc bindings unavailable: ${String(loadError)}`) as NodeJS.ErrnoException;
    e.code = 'ENOSYS';
    throw e;
  }
  return l;
}

export { errnoError };

/** glibc's makedev encoding of a 64-bit dev_t. */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major >>> 0);
  const mi = BigInt(minor >>> 0);
  return ((ma & 0xfffn) << 8n) | ((ma & ~0xfffn) << 32n) | (mi & 0xffn) | ((mi & ~0xffn) << 12n);
}

export const S_IFIFO = 0o010000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;

/** mknod(2): creates a device node or fifo; `mode` includes the file type bits. */
export function mknod(path: string, mode: number, major = 0, minor = 0): void {
  const l = lib('mknod');
  if (l.mknod(path, mode >>> 0, makedev(major, minor)) !== 0) throw errnoError('mknod', path, l.koffi.errno());
}

/** lsetxattr(2): sets an extended attribute without following a final symlink. */
export function lsetxattr(path: string, name: string, value: Buffer): void {
  const l = lib('lsetxattr');
  if (l.lsetxattr(path, name, value, value.length, 0) !== 0) throw errnoError('lsetxattr', path, l.koffi.errno());
}

/** lgetxattr(2); returns null when the attribute does not exist. */
export function lgetxattr(path: string, name: string): Buffer | null {
  const l = lib('lgetxattr');
  for (;;) {
    const size = l.lgetxattr(path, name, null, 0);
    if (size < 0) {
      const errno = l.koffi.errno();
      if (errnoName(errno) === 'ENODATA') return null;
      throw errnoError('lgetxattr', path, errno);
    }
    const buf = Buffer.alloc(size);
    const n = l.lgetxattr(path, name, buf, size);
    if (n >= 0) return buf.subarray(0, n);
    const errno = l.koffi.errno();
    // ERANGE: the value grew between the two calls; ask again.
    if (errnoName(errno) !== 'ERANGE') throw errnoError('lgetxattr', path, errno);
  }
}

/** llistxattr(2): names of all extended attributes of a path (not following symlinks). */
export function llistxattr(path: string): string[] {
  const l = lib('llistxattr');
  for (;;) {
    const size = l.llistxattr(path, null, 0);
    if (size < 0) {
      const errno = l.koffi.errno();
      if (errnoName(errno) === 'ENOTSUP') return [];
      throw errnoError('llistxattr', path, errno);
    }
    if (size === 0) return [];
    const buf = Buffer.alloc(size);
    const n = l.llistxattr(path, buf, size);
    if (n >= 0)
      return buf
        .subarray(0, n)
        .toString('utf8')
        .split('\0')
        .filter((s) => s.length > 0);
    const errno = l.koffi.errno();
    if (errnoName(errno) !== 'ERANGE') throw errnoError('llistxattr', path, errno);
  }
}
