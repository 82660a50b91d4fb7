/**
 * A systemd-style notify socket for tests: a bound unix datagram socket (what systemd passes
 * as $NOTIFY_SOCKET). Node has no unix datagram sockets, so socket/bind/recv go through koffi;
 * receiving polls with MSG_DONTWAIT so the event loop is never blocked.
 */
import { rmSync } from 'node:fs';
import { libc } from '../../src/libc.js';
import { notifyAddress } from '../../src/daemon/sd-notify.js';

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const MSG_DONTWAIT = 0x40;
const EAGAIN = 11;

export interface NotifySocket {
  path: string;
  /** Every datagram received so far, in order. */
  messages: string[];
  /** Resolves with the first message (received now or later) that `match` accepts. */
  waitFor(match: (m: string) => boolean, timeoutMs?: number): Promise<string>;
  close(): void;
}

export function bindNotifySocket(path: string): NotifySocket {
  const { koffi, lib } = libc();
  const socket = lib.func('int socket(int, int, int)') as (d: number, t: number, p: number) => number;
  const bind = lib.func('int bind(int, const void *addr, uint32_t addrlen)') as (fd: number, addr: Buffer, len: number) => number;
  const recv = lib.func('intptr_t recv(int, _Out_ void *buf, size_t len, int flags)') as (
    fd: number,
    buf: Buffer,
    len: number,
    flags: number,
  ) => number | bigint;
  const close = lib.func('int close(int)') as (fd: number) => number;

  const fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new Error(`socket: errno ${koffi.errno()}`);
  const { addr, len } = notifyAddress(path);
  if (bind(fd, addr, len) !== 0) {
    const e = koffi.errno();
    close(fd);
    throw new Error(`bind ${path}: errno ${e}`);
  }
  const messages: string[] = [];
  let closed = false;
  const drain = () => {
    const buf = Buffer.alloc(4096);
    for (;;) {
      const n = Number(recv(fd, buf, buf.length, MSG_DONTWAIT));
      if (n < 0) {
        const e = koffi.errno();
        if (e === EAGAIN) return;
        throw new Error(`recv: errno ${e}`);
      }
      messages.push(buf.subarray(0, n).toString('utf8'));
    }
  };
  return {
    path,
    messages,
    async waitFor(match, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        if (!closed) drain();
        const m = messages.find(match);
        if (m !== undefined) return m;
        if (Date.now() > deadline) throw new Error(`no matching notification on ${path} within ${timeoutMs} ms; got ${JSON.stringify(messages)}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    close() {
      if (closed) return;
      closed = true;
      close(fd);
      if (!path.startsWith('@')) rmSync(path, { force: true });
    },
  };
}
