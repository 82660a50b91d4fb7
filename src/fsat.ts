/**
 * fd-relative filesystem walks (openat, fstatat/statx, unlinkat, getdents64 through libc.ts),
 * for trees a container wrote: they may be deeper than PATH_MAX, and a running container may
 * swap any directory in them for a symlink. Nothing here builds a path longer than one name,
 * and nothing follows a symlink: every directory is opened with O_NOFOLLOW relative to the fd
 * of its parent. File names stay raw bytes (a layer's names need not be UTF-8): entries carry
 * them as latin1 strings, which map each byte to one char and back (and cost less memory than
 * a Buffer per name in a directory of millions).
 *
 * The walks are generators that yield every few hundred syscalls: `…Sync` runs them straight
 * (worker threads, start-up), the async forms give the event loop a turn between slices so a
 * large tree never stalls berthd's other calls.
 */
import { closeSync, constants as fsc, openSync } from 'node:fs';
import { constants as osc } from 'node:os';
import { basename, dirname } from 'node:path';
import { setImmediate as turn } from 'node:timers/promises';
import { libc } from './libc.js';

const AT_SYMLINK_NOFOLLOW = 0x100;
const AT_REMOVEDIR = 0x200;
const AT_EMPTY_PATH = 0x1000;
const STATX_BASIC_STATS = 0x7ff;
const DT_DIR = 4;
const DT_UNKNOWN = 0;
const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
/** O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC. */
export const O_DIR_NOFOLLOW = fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW | 0o2000000;
/** Directory fds a walk keeps open at most; deeper ancestors are closed and reopened through "..". */
const MAX_OPEN = 128;
/** Syscalls between two turns of the event loop in the async walks. */
const SLICE = 512;

interface Fns {
  errno: () => number;
  openat: (dirfd: number, name: Buffer, flags: number, mode: number) => number;
  unlinkat: (dirfd: number, name: Buffer, flags: number) => number;
  statx: (dirfd: number, name: Buffer, flags: number, mask: number, buf: Buffer) => number;
  getdents64: (fd: number, buf: Buffer, size: number) => number;
}
// Process-wide: the libc functions, bound once (koffi handles belong to the process).
let fns: Fns | undefined;

function f(): Fns {
  if (fns) return fns;
  const { koffi, lib } = libc();
  fns = {
    errno: () => koffi.errno(),
    openat: lib.func('int openat(int dirfd, const void *name, int flags, uint32_t mode)') as Fns['openat'],
    unlinkat: lib.func('int unlinkat(int dirfd, const void *name, int flags)') as Fns['unlinkat'],
    statx: lib.func('int statx(int dirfd, const void *name, int flags, uint32_t mask, void *buf)') as Fns['statx'],
    getdents64: lib.func('intptr_t getdents64(int fd, void *buf, size_t size)') as Fns['getdents64'],
  };
  return fns;
}

const errnoNames = new Map<number, string>(Object.entries(osc.errno).map(([n, v]) => [v as number, n]));

/** An fs-style error (`code`, `errno`, `syscall`) for the current errno. */
function fail(op: string, what: string, errno: number): NodeJS.ErrnoException {
  const code = errnoNames.get(errno) ?? `E${errno}`;
  const e = new Error(`${code}: ${op} ${what}`) as NodeJS.ErrnoException;
  e.code = code;
  e.errno = -errno;
  e.syscall = op;
  return e;
}

/** NUL-terminated bytes of a raw (latin1) name. */
const cname = (name: string): Buffer => Buffer.from(`${name}\0`, 'latin1');
/** NUL-terminated bytes of a caller's name (a UTF-8 string or raw bytes). */
const cbytes = (name: string | Buffer): Buffer => Buffer.concat([typeof name === 'string' ? Buffer.from(name) : name, Buffer.from([0])]);
const DOTDOT = cname('..');
const EMPTY = cname('');
const show = (name: string): string => JSON.stringify(Buffer.from(name, 'latin1').toString('utf8').slice(0, 200));

export interface StatAt {
  mode: number;
  nlink: number;
  /** `major:minor:ino`, unique per inode. */
  id: string;
  dev: string;
  blocks: number;
  size: number;
}

const statBuf = Buffer.alloc(256);

function statxRaw(dirfd: number, name: Buffer, flags: number): StatAt | number {
  const l = f();
  if (l.statx(dirfd, name, flags | AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, statBuf) !== 0) return l.errno();
  const dev = `${statBuf.readUInt32LE(136)}:${statBuf.readUInt32LE(140)}`;
  return {
    nlink: statBuf.readUInt32LE(16),
    mode: statBuf.readUInt16LE(28),
    id: `${dev}:${statBuf.readBigUInt64LE(32)}`,
    dev,
    size: Number(statBuf.readBigUInt64LE(40)),
    blocks: Number(statBuf.readBigUInt64LE(48)),
  };
}

/** fstatat(dirfd, name, AT_SYMLINK_NOFOLLOW) (statx); `name` is one component. */
export function statAt(dirfd: number, name: string | Buffer): StatAt {
  const n = cbytes(name);
  const r = statxRaw(dirfd, n, 0);
  if (typeof r === 'number') throw fail('statx', show(n.subarray(0, -1).toString('latin1')), r);
  return r;
}

/** fstat of an open fd. */
export function statFd(fd: number): StatAt {
  const r = statxRaw(fd, EMPTY, AT_EMPTY_PATH);
  if (typeof r === 'number') throw fail('statx', `fd ${fd}`, r);
  return r;
}

/** openat(dirfd, name, O_DIRECTORY|O_NOFOLLOW): a directory, never through a symlink. */
export function openDirAt(dirfd: number, name: string | Buffer): number {
  const n = cbytes(name);
  const l = f();
  const fd = l.openat(dirfd, n, O_DIR_NOFOLLOW, 0);
  if (fd < 0) throw fail('openat', show(n.subarray(0, -1).toString('latin1')), l.errno());
  return fd;
}

export interface Dirent {
  /** The raw name as a latin1 string (one char per byte). */
  name: string;
  /** d_type: 4 directory, 10 symlink, 8 regular, 0 unknown… */
  type: number;
}

const direntBuf = Buffer.alloc(64 * 1024);

/** All entries of an open directory but `.` and `..` (getdents64). */
export function readDirFd(fd: number): Dirent[] {
  const l = f();
  const out: Dirent[] = [];
  for (;;) {
    const n = l.getdents64(fd, direntBuf, direntBuf.length);
    if (n < 0) throw fail('getdents64', `fd ${fd}`, l.errno());
    if (n === 0) return out;
    for (let off = 0; off < n;) {
      const reclen = direntBuf.readUInt16LE(off + 16);
      const type = direntBuf.readUInt8(off + 18);
      const end = direntBuf.indexOf(0, off + 19);
      const name = direntBuf.toString('latin1', off + 19, end < 0 || end > off + reclen ? off + reclen : end);
      off += reclen;
      if (name === '.' || name === '..') continue;
      out.push({ name, type });
    }
  }
}

/** A directory being walked; `fd` is -1 while closed for depth (reopened from its child's ".."). */
interface Frame {
  fd: number;
  /** Inode id, to check a reopened ".." is still this directory. */
  id: string;
  entries: Dirent[];
  next: number;
  /** This directory's name in its parent (latin1). */
  name: string;
}

/**
 * Pops the top frame and makes its parent's fd usable again: a closed parent is reopened
 * through the child's ".." and must be the same inode (the container may have moved it).
 * Returns false when the parent could not be recovered (the walk must stop there).
 */
function popFrame(stack: Frame[]): boolean {
  const top = stack.pop()!;
  const parent = stack[stack.length - 1];
  let ok = true;
  if (parent && parent.fd < 0) {
    const l = f();
    const fd = l.openat(top.fd, DOTDOT, O_DIR_NOFOLLOW, 0);
    if (fd >= 0 && statFd(fd).id === parent.id) parent.fd = fd;
    else {
      if (fd >= 0) closeSync(fd);
      ok = false;
    }
  }
  closeSync(top.fd);
  return ok;
}

/** Pushes an opened child directory, closing the ancestor that falls out of the open window. */
function pushFrame(stack: Frame[], frame: Frame): void {
  stack.push(frame);
  const old = stack.length - 1 - MAX_OPEN;
  if (old >= 1 && stack[old]!.fd >= 0) {
    closeSync(stack[old]!.fd);
    stack[old]!.fd = -1;
  }
}

function closeAll(stack: Frame[]): void {
  for (const fr of stack) if (fr.fd >= 0) closeSync(fr.fd);
  stack.length = 0;
}

/**
 * Opens a trusted top-level path (berth's own dir) as a directory without following a final
 * symlink: its fd, 'missing', or 'other' (a file or a symlink).
 */
function openTop(path: string): number | 'missing' | 'other' {
  try {
    return openSync(path, O_DIR_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'missing';
    if (code === 'ENOTDIR' || code === 'ELOOP') return 'other';
    throw err;
  }
}

/** unlinkat(open(dirname(path)), basename(path), flags); a missing entry is fine. */
function unlinkTop(path: string, flags: number): void {
  const l = f();
  const dfd = openSync(dirname(path), O_DIR_NOFOLLOW);
  try {
    if (l.unlinkat(dfd, cbytes(basename(path)), flags) !== 0) {
      const errno = l.errno();
      if (errnoNames.get(errno) !== 'ENOENT') throw fail('unlinkat', path, errno);
    }
  } finally {
    closeSync(dfd);
  }
}

function* removeSteps(path: string): Generator<void, void, void> {
  const l = f();
  const top = openTop(path);
  if (top === 'missing') return;
  if (top === 'other') return unlinkTop(path, 0);
  const rootDev = statFd(top).dev;
  const stack: Frame[] = [{ fd: top, id: statFd(top).id, entries: readDirFd(top), next: 0, name: '' }];
  let ops = 0;
  try {
    while (stack.length > 0) {
      if (++ops % SLICE === 0) yield;
      const fr = stack[stack.length - 1]!;
      if (fr.next >= fr.entries.length) {
        if (stack.length === 1) break;
        const name = cname(fr.name);
        if (!popFrame(stack)) throw fail('openat', `".." of ${show(fr.name)} (directory moved during removal)`, osc.errno.ESTALE);
        const parent = stack[stack.length - 1]!;
        if (l.unlinkat(parent.fd, name, AT_REMOVEDIR) !== 0) {
          const errno = l.errno();
          if (errnoNames.get(errno) !== 'ENOENT') throw fail('unlinkat', show(fr.name), errno);
        }
        continue;
      }
      const e = fr.entries[fr.next++]!;
      const n = cname(e.name);
      if (e.type !== DT_DIR) {
        if (l.unlinkat(fr.fd, n, 0) === 0) continue;
        const errno = l.errno();
        const code = errnoNames.get(errno);
        if (code === 'ENOENT') continue;
        if (code !== 'EISDIR' || e.type !== DT_UNKNOWN) throw fail('unlinkat', show(e.name), errno);
      }
      const fd = l.openat(fr.fd, n, O_DIR_NOFOLLOW, 0);
      if (fd < 0) {
        const errno = l.errno();
        const code = errnoNames.get(errno);
        if (code === 'ENOENT') continue;
        if (code === 'ENOTDIR' || code === 'ELOOP') {
          // Swapped for a file or symlink since it was listed: remove that, never follow it.
          if (l.unlinkat(fr.fd, n, 0) !== 0 && errnoNames.get(l.errno()) !== 'ENOENT') throw fail('unlinkat', show(e.name), l.errno());
          continue;
        }
        throw fail('openat', show(e.name), errno);
      }
      const st = statFd(fd);
      if (st.dev !== rootDev) {
        closeSync(fd);
        throw fail('remove', `${show(e.name)}: a mount point inside the tree`, osc.errno.EBUSY);
      }
      let entries: Dirent[];
      try {
        entries = readDirFd(fd);
      } catch (err) {
        closeSync(fd);
        throw err;
      }
      pushFrame(stack, { fd, id: st.id, entries, next: 0, name: e.name });
    }
  } finally {
    closeAll(stack);
  }
  unlinkTop(path, AT_REMOVEDIR);
}

/**
 * `rm -rf path`, fd-relative: any depth, never follows a symlink, never crosses into another
 * filesystem (a mount inside the tree fails with EBUSY and is left alone). Missing: no error.
 */
export async function removeTree(path: string): Promise<void> {
  const g = removeSteps(path);
  while (!g.next().done) await turn();
}

export function removeTreeSync(path: string): void {
  const g = removeSteps(path);
  while (!g.next().done);
}

export interface TreeUsage {
  /** Allocated bytes (st_blocks × 512), each inode once. */
  size: number;
  inodes: number;
  /** Entries that could not be measured (vanished, swapped, unreadable), skipped. */
  errors: number;
  /** The first of those errors, for a log line. */
  firstError?: string;
}

function* usageSteps(path: string, out: TreeUsage): Generator<void, void, void> {
  const l = f();
  const top = openTop(path);
  if (typeof top !== 'number') return;
  const seen = new Set<string>();
  const note = (what: string, errno: number): void => {
    out.errors += 1;
    out.firstError ??= `${errnoNames.get(errno) ?? errno}: ${what}`;
  };
  const count = (st: StatAt): void => {
    // Only inodes with several links can be met twice (directories cannot be hard-linked).
    if (st.nlink > 1 && (st.mode & S_IFMT) !== S_IFDIR) {
      if (seen.has(st.id)) return;
      seen.add(st.id);
    }
    out.inodes += 1;
    out.size += st.blocks * 512;
  };
  const rootSt = statFd(top);
  count(rootSt);
  let rootEntries: Dirent[] = [];
  try {
    rootEntries = readDirFd(top);
  } catch (err) {
    note(`getdents64 ${path}`, -((err as NodeJS.ErrnoException).errno ?? 0));
  }
  const stack: Frame[] = [{ fd: top, id: rootSt.id, entries: rootEntries, next: 0, name: '' }];
  let ops = 0;
  try {
    while (stack.length > 0) {
      if (++ops % SLICE === 0) yield;
      const fr = stack[stack.length - 1]!;
      if (fr.next >= fr.entries.length) {
        if (stack.length === 1) break;
        if (!popFrame(stack)) {
          // The parent moved away while closed: measure what is left above it, from the top.
          note(`".." of ${show(fr.name)} changed during the walk`, osc.errno.ESTALE);
          while (stack.length > 1 && stack[stack.length - 1]!.fd < 0) stack.pop();
        }
        continue;
      }
      const e = fr.entries[fr.next++]!;
      const n = cname(e.name);
      const st = statxRaw(fr.fd, n, 0);
      if (typeof st === 'number') {
        if (errnoNames.get(st) !== 'ENOENT') note(`statx ${show(e.name)}`, st);
        continue;
      }
      count(st);
      if ((st.mode & S_IFMT) !== S_IFDIR) continue;
      const fd = l.openat(fr.fd, n, O_DIR_NOFOLLOW, 0);
      if (fd < 0) {
        const errno = l.errno();
        // ENOENT, ENOTDIR, ELOOP: removed or swapped for a file or symlink since the statx.
        if (!['ENOENT', 'ENOTDIR', 'ELOOP'].includes(errnoNames.get(errno) ?? '')) note(`openat ${show(e.name)}`, errno);
        continue;
      }
      let entries: Dirent[];
      try {
        entries = readDirFd(fd);
      } catch (err) {
        closeSync(fd);
        note(`getdents64 ${show(e.name)}`, -((err as NodeJS.ErrnoException).errno ?? 0));
        continue;
      }
      pushFrame(stack, { fd, id: statFd(fd).id, entries, next: 0, name: e.name });
    }
  } finally {
    closeAll(stack);
  }
}

/**
 * du of a tree, fd-relative (any depth, no symlink followed, a directory swapped for a symlink
 * mid-walk is skipped); per-entry errors are counted in `errors`, never thrown. A missing
 * `path` measures 0.
 */
export async function treeUsage(path: string): Promise<TreeUsage> {
  const out: TreeUsage = { size: 0, inodes: 0, errors: 0 };
  const g = usageSteps(path, out);
  while (!g.next().done) await turn();
  return out;
}

export function treeUsageSync(path: string): TreeUsage {
  const out: TreeUsage = { size: 0, inodes: 0, errors: 0 };
  const g = usageSteps(path, out);
  while (!g.next().done);
  return out;
}
