/**
 * Worker thread of netns-dial.ts: makes TCP sockets inside other network namespaces.
 *
 * setns(2) changes the namespace of the calling thread only, and a socket belongs for life to
 * the namespace its thread was in when socket(2) made it. This thread (a Node worker is an OS
 * thread of its own, not one of libuv's pool) therefore, for each request and in one
 * synchronous stretch: opens the namespace file, setns()s into it, makes an unconnected
 * non-blocking socket, and setns()s back into berthd's namespace (opened when the worker
 * started; Node opens files O_CLOEXEC). The fd goes back to berthd's main thread, which connects it there with libuv.
 * The thread makes no other socket, and never stays in a pod's namespace (it would keep the
 * namespace alive): if it cannot go back, it reports that and exits, and its thread ends.
 */
import { closeSync, constants as C, openSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { libc } from '../libc.js';

export interface SocketRequest {
  id: number;
  /** A network namespace file: a pinned netns handle or /proc/PID/ns/net. */
  path: string;
  family: 4 | 6;
}

/** id 0 with ready: the worker loaded koffi and libc and serves requests. */
export type SocketReply = { id: 0; ready: true } | { id: number; fd: number } | { id: number; error: string; errno?: number; fatal?: boolean };

const CLONE_NEWNET = 0x40000000;
const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;

const { koffi, lib } = libc();
const setns = lib.func('int setns(int fd, int nstype)') as (fd: number, type: number) => number;
const socket = lib.func('int socket(int domain, int type, int protocol)') as (d: number, t: number, p: number) => number;
const errno = (): number => koffi.errno();

const home = openSync('/proc/thread-self/ns/net', C.O_RDONLY);

function make(req: SocketRequest): SocketReply {
  let nsfd: number;
  try {
    nsfd = openSync(req.path, C.O_RDONLY);
  } catch (err) {
    return { id: req.id, error: `open ${req.path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
  }
  try {
    if (setns(nsfd, CLONE_NEWNET) !== 0) return { id: req.id, error: `setns ${req.path}`, errno: errno() };
    const fd = socket(req.family === 6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const e = errno();
    if (setns(home, CLONE_NEWNET) !== 0) {
      // Never go on in a pod's namespace: say so and end this thread.
      if (fd >= 0) closeSync(fd);
      return { id: req.id, error: "setns back to berthd's network namespace", errno: errno(), fatal: true };
    }
    return fd < 0 ? { id: req.id, error: 'socket', errno: e } : { id: req.id, fd };
  } finally {
    closeSync(nsfd);
  }
}

parentPort!.on('message', (req: SocketRequest) => {
  const reply = make(req);
  parentPort!.postMessage(reply);
  if ('fatal' in reply && reply.fatal) process.exit(1);
});
parentPort!.postMessage({ id: 0, ready: true } satisfies SocketReply);
