/**
 * mount(2)/umount2(2) through koffi (no spawning of mount(8)). Lives below every layer: snapshots,
 * network (pinned namespaces), runtime (bundles), the shim (rootfs) and cri/ (shm, idmap) use it.
 *
 * Options of a Mount are split into mount flags (ro, nosuid, bind, rbind, propagation, …) and
 * the filesystem data string (overlay's lowerdir=…,upperdir=…,workdir=…). Bind mounts ignore
 * flags other than MS_BIND/MS_REC on the first call, so ro/nosuid/nodev/noexec are applied by a
 * second MS_REMOUNT|MS_BIND call, and propagation by a third, as the kernel requires.
 *
 * The data string is limited to one page (4096 bytes incl. the NUL) by the kernel.
 */
import { join } from 'node:path';
import { errors } from './errors.js';
import { errnoError, libc as loadLibc } from './libc.js';

type KoffiModule = import('./libc.js').Koffi;

/** A mount to make: containerd's Mount (type, source, options; target a sub-path below the mount point). */
export interface Mount {
  type: string;
  source: string;
  /** Optional sub-path below the mount target (containerd 2 semantics). */
  target?: string;
  options: string[];
}

const MS_RDONLY = 0x1;
const MS_NOSUID = 0x2;
const MS_NODEV = 0x4;
const MS_NOEXEC = 0x8;
const MS_SYNCHRONOUS = 0x10;
const MS_REMOUNT = 0x20;
const MS_DIRSYNC = 0x80;
const MS_NOATIME = 0x400;
const MS_NODIRATIME = 0x800;
const MS_BIND = 0x1000;
const MS_REC = 0x4000;
const MS_UNBINDABLE = 0x20000;
const MS_PRIVATE = 0x40000;
const MS_SLAVE = 0x80000;
const MS_SHARED = 0x100000;
const MS_RELATIME = 0x200000;
const MS_STRICTATIME = 0x1000000;
const MNT_DETACH = 0x2;

export const MAX_MOUNT_DATA = 4095;

const setFlags: Record<string, number> = {
  ro: MS_RDONLY,
  nosuid: MS_NOSUID,
  nodev: MS_NODEV,
  noexec: MS_NOEXEC,
  sync: MS_SYNCHRONOUS,
  dirsync: MS_DIRSYNC,
  noatime: MS_NOATIME,
  nodiratime: MS_NODIRATIME,
  bind: MS_BIND,
  rbind: MS_BIND | MS_REC,
  relatime: MS_RELATIME,
  strictatime: MS_STRICTATIME,
};
const clearFlags = new Set(['rw', 'suid', 'dev', 'exec', 'async', 'atime', 'diratime', 'defaults']);
const propagation: Record<string, number> = {
  private: MS_PRIVATE,
  rprivate: MS_PRIVATE | MS_REC,
  slave: MS_SLAVE,
  rslave: MS_SLAVE | MS_REC,
  shared: MS_SHARED,
  rshared: MS_SHARED | MS_REC,
  unbindable: MS_UNBINDABLE,
  runbindable: MS_UNBINDABLE | MS_REC,
};

export interface ParsedOptions {
  flags: number;
  propagation: number;
  data: string;
}

/** Splits mount options into flags, propagation flags and the fs data string. */
export function parseMountOptions(options: readonly string[]): ParsedOptions {
  let flags = 0;
  let prop = 0;
  const data: string[] = [];
  for (const o of options) {
    if (o in setFlags) flags |= setFlags[o]!;
    else if (clearFlags.has(o)) continue;
    else if (o in propagation) prop |= propagation[o]!;
    else data.push(o);
  }
  const s = data.join(',');
  if (Buffer.byteLength(s) > MAX_MOUNT_DATA) {
    throw errors.invalidArgument('mount.options_too_long', `mount data is ${Buffer.byteLength(s)} bytes, the kernel limit is ${MAX_MOUNT_DATA}`);
  }
  return { flags, propagation: prop, data: s };
}

interface Fns {
  koffi: KoffiModule;
  mount: (source: string | null, target: string, fstype: string | null, flags: number, data: string | null) => number;
  umount2: (target: string, flags: number) => number;
}
// Process-wide: the libc functions, bound once (koffi handles belong to the process).
let fns: Fns | undefined;

function libc(): Fns {
  if (fns) return fns;
  const { koffi, lib } = loadLibc();
  fns = {
    koffi,
    mount: lib.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)') as Fns['mount'],
    umount2: lib.func('int umount2(const char *target, int flags)') as Fns['umount2'],
  };
  return fns;
}

function sysMount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): void {
  const l = libc();
  if (l.mount(source, target, fstype, flags, data) !== 0) throw errnoError('mount', target, l.koffi.errno());
}

/** Mounts each of `mounts` in order onto `target` (or `target/<mount.target>`). */
export function mountAll(mounts: readonly Mount[], target: string): void {
  for (const m of mounts) {
    const dst = m.target ? join(target, m.target) : target;
    const o = parseMountOptions(m.options);
    if (o.flags & MS_BIND) {
      sysMount(m.source, dst, null, o.flags & (MS_BIND | MS_REC), null);
      const extra = o.flags & ~(MS_BIND | MS_REC);
      if (extra !== 0) sysMount(null, dst, null, MS_REMOUNT | MS_BIND | extra, null);
    } else {
      sysMount(m.source, dst, m.type, o.flags, o.data === '' ? null : o.data);
    }
    if (o.propagation !== 0) sysMount(null, dst, null, o.propagation, null);
  }
}

/**
 * Unmounts `target`. Not-mounted and missing targets are fine (idempotent); with `all`, stacked
 * mounts are removed until none is left.
 */
export function unmount(target: string, opts: { detach?: boolean; all?: boolean } = {}): void {
  const l = libc();
  for (let i = 0; i < 1000; i++) {
    if (l.umount2(target, opts.detach ? MNT_DETACH : 0) !== 0) {
      const err = errnoError('umount2', target, l.koffi.errno());
      if (err.code === 'EINVAL' || err.code === 'ENOENT') return;
      throw err;
    }
    if (!opts.all) return;
  }
}
