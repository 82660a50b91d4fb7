/**
 * sd_notify(3) for berthd under systemd (Type=notify): one datagram with newline-separated
 * `KEY=VALUE` lines to the unix socket named by $NOTIFY_SOCKET (a path, or `@name` for an
 * abstract socket). Node has no unix datagram sockets, so socket/sendto go through koffi.
 *
 * `takeNotifySocket()` reads $NOTIFY_SOCKET once and removes it from the environment, so the
 * shims and plugins berthd starts never inherit it (their messages would be refused by
 * NotifyAccess=main anyway, and a stray READY=1 must never come from a child).
 */
import { libc } from '../libc.js';

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const MSG_NOSIGNAL = 0x4000;
/** sizeof(struct sockaddr_un): sa_family_t (2 bytes) + sun_path[108]. */
const SOCKADDR_UN_SIZE = 110;

interface Fns {
  socket(domain: number, type: number, protocol: number): number;
  sendto(fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, addrlen: number): number;
  close(fd: number): number;
  errno(): number;
}
// Process-wide: the libc functions, bound once (koffi handles belong to the process).
let fns: Fns | undefined;

function load(): Fns {
  if (!fns) {
    const { koffi, lib } = libc();
    fns = {
      socket: lib.func('int socket(int, int, int)') as Fns['socket'],
      sendto: lib.func('intptr_t sendto(int, const void *buf, size_t len, int flags, const void *addr, uint32_t addrlen)') as Fns['sendto'],
      close: lib.func('int close(int)') as Fns['close'],
      errno: () => koffi.errno(),
    };
  }
  return fns;
}

/** struct sockaddr_un for a NOTIFY_SOCKET value, and the address length to pass. */
export function notifyAddress(socketPath: string): { addr: Buffer; len: number } {
  const abstract = socketPath.startsWith('@');
  if (!abstract && !socketPath.startsWith('/')) {
    throw new Error(`NOTIFY_SOCKET ${JSON.stringify(socketPath)} is neither an absolute path nor an @abstract name`);
  }
  const path = Buffer.from(socketPath, 'utf8');
  if (abstract) path[0] = 0;
  // A filesystem path needs room for its terminating NUL; an abstract name has none.
  if (path.length > SOCKADDR_UN_SIZE - 2 - (abstract ? 0 : 1)) throw new Error(`NOTIFY_SOCKET path is too long (${path.length} bytes)`);
  const addr = Buffer.alloc(SOCKADDR_UN_SIZE);
  addr.writeUInt16LE(AF_UNIX, 0);
  path.copy(addr, 2);
  return { addr, len: 2 + path.length + (abstract ? 0 : 1) };
}

/** Send one notification (e.g. "READY=1\nSTATUS=serving") to `socketPath`; throws with errno on failure. */
export function sdNotify(socketPath: string, message: string): void {
  const { addr, len } = notifyAddress(socketPath);
  const f = load();
  const fd = f.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new Error(`sd_notify: socket: errno ${f.errno()}`);
  try {
    const buf = Buffer.from(message, 'utf8');
    const n = Number(f.sendto(fd, buf, buf.length, MSG_NOSIGNAL, addr, len));
    if (n < 0) throw new Error(`sd_notify: sendto ${socketPath}: errno ${f.errno()}`);
  } finally {
    f.close(fd);
  }
}

/** $NOTIFY_SOCKET, removed from this process's environment (children must not inherit it). */
export function takeNotifySocket(): string | undefined {
  const v = process.env.NOTIFY_SOCKET;
  delete process.env.NOTIFY_SOCKET;
  return v ? v : undefined;
}

/** A notifier bound to the socket systemd gave us; a no-op when berthd was not started by systemd. */
export interface Notifier {
  /** True when there is a socket to notify. */
  readonly active: boolean;
  notify(message: string): void;
}

export function notifier(socketPath: string | undefined, onError: (err: Error) => void): Notifier {
  return {
    active: socketPath !== undefined,
    notify(message) {
      if (socketPath === undefined) return;
      try {
        sdNotify(socketPath, message);
      } catch (err) {
        onError(err as Error);
      }
    },
  };
}
