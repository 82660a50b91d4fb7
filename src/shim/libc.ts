/**
 * The few libc calls the shim needs and Node does not offer: child-subreaper, waitpid on a
 * specific pid, real pipes (not socketpairs), receiving a file descriptor over a unix socket
 * (runc's --console-socket), terminal resize and dup/close on raw fds.
 *
 * koffi is loaded lazily on first use so that `berth-shim start` (which never needs libc) keeps
 * its start-up cost low.
 */
import { libc as loadLibc } from '../libc.js';

type Koffi = import('../libc.js').Koffi;
type Fn = (...args: unknown[]) => number;

interface Libc {
  koffi: Koffi;
  prctl: Fn;
  waitpid: Fn;
  pipe2: Fn;
  socket: Fn;
  bind: Fn;
  listen: Fn;
  accept4: Fn;
  recvmsg: Fn;
  close: Fn;
  dup: Fn;
  ioctlWinsize: Fn;
  fcntl: Fn;
}

// Process-wide: the libc functions, bound once (koffi handles belong to the process).
let libc: Libc | undefined;

function load(): Libc {
  if (libc) return libc;
  const { koffi, lib } = loadLibc();
  // prctl is variadic in glibc; on x86-64/arm64 a fixed 5-argument integer prototype is ABI
  // compatible for the options we use.
  const winsize = koffi.struct('berth_winsize', { row: 'uint16_t', col: 'uint16_t', xpixel: 'uint16_t', ypixel: 'uint16_t' });
  libc = {
    koffi,
    prctl: lib.func('int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)'),
    waitpid: lib.func('int waitpid(int pid, _Out_ int *status, int options)'),
    pipe2: lib.func('int pipe2(_Out_ int *fds, int flags)'),
    socket: lib.func('int socket(int domain, int type, int protocol)'),
    bind: lib.func('int bind(int fd, void *addr, uint32_t len)'),
    listen: lib.func('int listen(int fd, int backlog)'),
    accept4: lib.func('int accept4(int fd, void *addr, void *len, int flags)'),
    recvmsg: lib.func('long recvmsg(int fd, void *msg, int flags)'),
    close: lib.func('int close(int fd)'),
    dup: lib.func('int dup(int fd)'),
    ioctlWinsize: lib.func('int ioctl(int fd, unsigned long req, berth_winsize *ws)') as Fn,
    fcntl: lib.func('int fcntl(int fd, int cmd, int arg)'),
  };
  void winsize;
  return libc;
}

export const EAGAIN = 11;
export const EINTR = 4;
export const ECHILD = 10;
const O_CLOEXEC = 0o2000000;
const O_NONBLOCK = 0o4000;
const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const WNOHANG = 1;
const PR_SET_CHILD_SUBREAPER = 36;
const TIOCSWINSZ = 0x5414;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;

export function errno(): number {
  return load().koffi.errno();
}

function fail(call: string): never {
  const e = errno();
  const err = new Error(`${call} failed: errno ${e}`) as NodeJS.ErrnoException;
  err.errno = e;
  throw err;
}

/** Become the child subreaper: orphaned descendants (runc's container inits) re-parent to us. */
export function setChildSubreaper(): void {
  if (load().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) !== 0) fail('prctl(PR_SET_CHILD_SUBREAPER)');
}

/** Raw wait status → exit code in shell convention (signal N → 128+N). */
export function decodeWaitStatus(status: number): number {
  const sig = status & 0x7f;
  if (sig === 0) return (status >> 8) & 0xff;
  return 128 + sig;
}

/**
 * waitpid(pid, WNOHANG). Returns the exit code if the pid was reaped, undefined if it is still
 * running, null if it is not our child (ECHILD: reaped elsewhere or never ours).
 */
export function reapPid(pid: number): number | undefined | null {
  const l = load();
  for (;;) {
    const st = [0];
    const r = l.waitpid(pid, st, WNOHANG);
    if (r === pid) return decodeWaitStatus(st[0] ?? 0);
    if (r === 0) return undefined;
    const e = l.koffi.errno();
    if (e === EINTR) continue;
    if (e === ECHILD) return null;
    fail('waitpid');
  }
}

/** A real pipe (close-on-exec both ends): [readFd, writeFd]. */
export function pipe(): [number, number] {
  const fds = [0, 0];
  if (load().pipe2(fds, O_CLOEXEC) !== 0) fail('pipe2');
  return [fds[0] ?? -1, fds[1] ?? -1];
}

export function closeFd(fd: number): void {
  load().close(fd);
}

export function dupFd(fd: number): number {
  // F_DUPFD_CLOEXEC = 1030: duplicate without leaking into spawned children.
  const r = load().fcntl(fd, 1030, 0);
  if (r < 0) fail('fcntl(F_DUPFD_CLOEXEC)');
  return r;
}

/** Set the terminal size of a pty (master) fd. */
export function setWinsize(fd: number, rows: number, cols: number): void {
  if (load().ioctlWinsize(fd, TIOCSWINSZ, { row: rows, col: cols, xpixel: 0, ypixel: 0 }) !== 0) fail('ioctl(TIOCSWINSZ)');
}

function sockaddrUn(path: string): Buffer {
  const p = Buffer.from(path);
  if (p.length >= 108) throw new Error(`unix socket path too long: ${path}`);
  const b = Buffer.alloc(110);
  b.writeUInt16LE(AF_UNIX, 0);
  p.copy(b, 2);
  return b;
}

/** A non-blocking listening unix stream socket bound to `path` (a filesystem path, never abstract). */
export function listenUnix(path: string): number {
  const l = load();
  const fd = l.socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) fail('socket');
  const addr = sockaddrUn(path);
  if (l.bind(fd, addr, addr.length) !== 0) {
    const e = errno();
    l.close(fd);
    const err = new Error(`bind ${path}: errno ${e}`) as NodeJS.ErrnoException;
    err.errno = e;
    throw err;
  }
  if (l.listen(fd, 4) !== 0) {
    l.close(fd);
    fail('listen');
  }
  return fd;
}

/** Non-blocking accept: a connected fd, or -1 when nobody is waiting. */
export function tryAccept(fd: number): number {
  const l = load();
  const r = l.accept4(fd, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (r >= 0) return r;
  const e = errno();
  if (e === EAGAIN || e === EINTR) return -1;
  return fail('accept4');
}

/**
 * Non-blocking receive of one SCM_RIGHTS file descriptor. Returns the fd, -1 if nothing has
 * arrived yet, or throws if the peer closed without sending one.
 */
export function tryRecvFd(fd: number): number {
  const l = load();
  const k = l.koffi;
  // struct msghdr (x86-64/arm64 layout): name*, namelen(+pad), iov*, iovlen, control*, controllen, flags(+pad)
  const data = k.alloc('uint8_t', 4096);
  const iov = k.alloc('uint8_t', 16);
  const control = k.alloc('uint8_t', 64);
  const msg = k.alloc('uint8_t', 56);
  k.encode(iov, 0, 'uint64_t', k.address(data));
  k.encode(iov, 8, 'uint64_t', 4096n);
  k.encode(msg, 0, 'uint64_t', 0n);
  k.encode(msg, 8, 'uint64_t', 0n);
  k.encode(msg, 16, 'uint64_t', k.address(iov));
  k.encode(msg, 24, 'uint64_t', 1n);
  k.encode(msg, 32, 'uint64_t', k.address(control));
  k.encode(msg, 40, 'uint64_t', 64n);
  k.encode(msg, 48, 'uint64_t', 0n);
  const MSG_CMSG_CLOEXEC = 0x40000000;
  const n = l.recvmsg(fd, msg, MSG_CMSG_CLOEXEC);
  try {
    if (n < 0) {
      const e = errno();
      if (e === EAGAIN || e === EINTR) return -1;
      fail('recvmsg');
    }
    const controllen = Number(k.decode(msg, 40, 'uint64_t'));
    // struct cmsghdr: len (size_t), level (int), type (int), data...
    if (controllen >= 20) {
      const level = k.decode(control, 8, 'int32_t') as number;
      const type = k.decode(control, 12, 'int32_t') as number;
      if (level === SOL_SOCKET && type === SCM_RIGHTS) return k.decode(control, 16, 'int32_t') as number;
    }
    throw new Error(n === 0 ? 'console socket closed before a terminal fd was sent' : 'console socket message carried no fd');
  } finally {
    k.free(data);
    k.free(iov);
    k.free(control);
    k.free(msg);
  }
}

export { O_NONBLOCK };
