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
  posixSpawn: Fn;
  faInit: Fn;
  faDestroy: Fn;
  faDup2: Fn;
  faOpen: Fn;
  faChdir: Fn;
  faCloseFrom: Fn | undefined;
  attrInit: Fn;
  attrDestroy: Fn;
  attrSetFlags: Fn;
  attrSetSigMask: Fn;
  attrSetSigDefault: Fn;
  sigEmpty: Fn;
  sigFill: Fn;
}

// Process-wide: the libc functions, bound once (koffi handles belong to the process).
let libc: Libc | undefined;

/** A function glibc may lack (older versions): undefined then. */
function optionalFunc(lib: import('../libc.js').LibC, proto: string): Fn | undefined {
  try {
    return lib.func(proto) as Fn;
  } catch {
    return undefined;
  }
}

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
    posixSpawn: lib.func('int posix_spawnp(_Out_ int *pid, const char *path, void *fa, void *attr, const char **argv, const char **envp)'),
    faInit: lib.func('int posix_spawn_file_actions_init(void *fa)'),
    faDestroy: lib.func('int posix_spawn_file_actions_destroy(void *fa)'),
    faDup2: lib.func('int posix_spawn_file_actions_adddup2(void *fa, int fd, int newfd)'),
    faOpen: lib.func('int posix_spawn_file_actions_addopen(void *fa, int fd, const char *path, int oflag, int mode)'),
    faChdir: lib.func('int posix_spawn_file_actions_addchdir_np(void *fa, const char *path)'),
    faCloseFrom: optionalFunc(lib, 'int posix_spawn_file_actions_addclosefrom_np(void *fa, int from)'),
    attrInit: lib.func('int posix_spawnattr_init(void *attr)'),
    attrDestroy: lib.func('int posix_spawnattr_destroy(void *attr)'),
    attrSetFlags: lib.func('int posix_spawnattr_setflags(void *attr, short flags)'),
    attrSetSigMask: lib.func('int posix_spawnattr_setsigmask(void *attr, void *set)'),
    attrSetSigDefault: lib.func('int posix_spawnattr_setsigdefault(void *attr, void *set)'),
    sigEmpty: lib.func('int sigemptyset(void *set)'),
    sigFill: lib.func('int sigfillset(void *set)'),
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
  const r = reapPidStatus(pid);
  return r == null ? r : decodeWaitStatus(r);
}

/** As reapPid, with the raw wait status (to tell a signal from an exit code). */
export function reapPidStatus(pid: number): number | undefined | null {
  const l = load();
  for (;;) {
    const st = [0];
    const r = l.waitpid(pid, st, WNOHANG);
    if (r === pid) return st[0] ?? 0;
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

/** The capacity of a pipe or FIFO (fcntl F_GETPIPE_SZ); undefined when the call fails. */
export function pipeSize(fd: number): number | undefined {
  const r = load().fcntl(fd, 1032, 0);
  return r > 0 ? r : undefined;
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

const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
const O_RDWR = 2;
const F_DUPFD_CLOEXEC = 1030;

export interface RawSpawn {
  /** Working directory of the child. */
  cwd?: string;
  /** The child's fd i becomes `fds[i]` of ours ('null': /dev/null); every other fd is closed. */
  fds: Array<number | 'null'>;
}

/**
 * posix_spawnp(3) (PATH searched for a bare name): glibc starts the child with clone(CLONE_VM | CLONE_VFORK), so no copy of the
 * shim's address space is made (Node's child_process forks it: page tables copied, then every
 * page the shim writes until the child execs faults). The child starts with default signal
 * dispositions and an empty signal mask (Node ignores SIGPIPE; an ignored signal would survive
 * exec), and only the fds in `o.fds`. It is not a libuv child: the caller reaps it (waitpid, as
 * the Reaper does). Returns the pid; throws with the error posix_spawn returned.
 */
export function spawnRaw(file: string, argv: readonly string[], env: readonly string[], o: RawSpawn): number {
  const l = load();
  // Sources are first duplicated above every target fd, so no dup2 overwrites a later source.
  const high: number[] = [];
  const fa = Buffer.alloc(512);
  const attr = Buffer.alloc(1024);
  const sigs = Buffer.alloc(256);
  let faReady = false;
  let attrReady = false;
  try {
    for (const fd of o.fds) {
      if (fd === 'null') continue;
      const h = l.fcntl(fd, F_DUPFD_CLOEXEC, 64);
      if (h < 0) fail('fcntl(F_DUPFD_CLOEXEC)');
      high.push(h);
    }
    if (l.faInit(fa) !== 0) fail('posix_spawn_file_actions_init');
    faReady = true;
    let next = 0;
    for (let i = 0; i < o.fds.length; i++) {
      const r = o.fds[i] === 'null' ? l.faOpen(fa, i, '/dev/null', O_RDWR, 0) : l.faDup2(fa, high[next++], i);
      if (r !== 0) throw spawnError('posix_spawn_file_actions', r);
    }
    if (l.faCloseFrom) l.faCloseFrom(fa, o.fds.length);
    if (o.cwd && l.faChdir(fa, o.cwd) !== 0) fail('posix_spawn_file_actions_addchdir_np');
    if (l.attrInit(attr) !== 0) fail('posix_spawnattr_init');
    attrReady = true;
    l.sigEmpty(sigs);
    l.attrSetSigMask(attr, sigs);
    l.sigFill(sigs);
    l.attrSetSigDefault(attr, sigs);
    l.attrSetFlags(attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    const pid = [0];
    const r = l.posixSpawn(pid, file, fa, attr, [...argv, null], [...env, null]);
    if (r !== 0) throw spawnError(`posix_spawn ${file}`, r);
    return pid[0] ?? 0;
  } finally {
    if (faReady) l.faDestroy(fa);
    if (attrReady) l.attrDestroy(attr);
    for (const h of high) l.close(h);
  }
}

function spawnError(call: string, e: number): NodeJS.ErrnoException {
  const err = new Error(`${call} failed: errno ${e}`) as NodeJS.ErrnoException;
  err.errno = e;
  err.code = e === 2 ? 'ENOENT' : e === 13 ? 'EACCES' : undefined;
  return err;
}
