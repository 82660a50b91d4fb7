/**
 * runc's --console-socket: for a process with terminal: true, runc creates the pty inside the
 * container and sends the master fd over a unix socket with SCM_RIGHTS. Node cannot receive
 * fds, so the socket is made with libc (koffi). runc's connect + sendmsg complete against the
 * listen backlog and socket buffer even before we accept, so the shim simply accepts after
 * `runc create|exec` has returned — no thread blocks and nothing polls.
 *
 * Sockets live in a 0700 directory (never abstract: abstract sockets are reachable from
 * host-network pods).
 */
import { mkdirSync, rmSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import tty from 'node:tty';
import { listenUnix, tryAccept, tryRecvFd, closeFd, dupFd, setWinsize } from './libc.js';
import { errors } from '../errors.js';

let seq = 0;

export class ConsoleSocket {
  private constructor(
    readonly path: string,
    private fd: number,
  ) {}

  static create(dir: string): ConsoleSocket {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chmodSync(dir, 0o700);
    // Unique within the shim's private 0700 directory; a leftover of a dead shim with the
    // same pid would make bind fail, so clear the name first.
    const path = join(dir, `${process.pid}-${(++seq).toString(36)}-${Date.now().toString(36)}.sock`);
    rmSync(path, { force: true });
    return new ConsoleSocket(path, listenUnix(path));
  }

  /** Receive the pty master fd runc sent. Call after runc create/exec returned successfully. */
  receiveMaster(): number {
    const conn = tryAccept(this.fd);
    if (conn < 0) throw errors.internal('shim.console_missing', 'runc did not connect to the console socket');
    try {
      const master = tryRecvFd(conn);
      if (master < 0) throw errors.internal('shim.console_missing', 'runc sent no terminal fd on the console socket');
      return master;
    } finally {
      closeFd(conn);
    }
  }

  /** receiveMaster() wrapped in a Pty. */
  receivePty(): Pty {
    return new Pty(this.receiveMaster());
  }

  close(): void {
    if (this.fd >= 0) closeFd(this.fd);
    this.fd = -1;
    rmSync(this.path, { force: true });
  }
}

/** The shim side of a container terminal: a reader and a writer on the pty master. */
export class Pty {
  readonly output: tty.ReadStream;
  readonly input: tty.WriteStream;

  constructor(readonly masterFd: number) {
    // libuv cannot register one fd twice with epoll: the writer gets its own duplicate.
    this.output = new tty.ReadStream(masterFd);
    this.input = new tty.WriteStream(dupFd(masterFd));
    // Reading a master after the last slave fd closed fails with EIO: that is the EOF.
    this.output.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EIO') this.output.push(null);
    });
    this.input.on('error', () => undefined);
  }

  resize(width: number, height: number): void {
    setWinsize(this.masterFd, height, width);
  }

  close(): void {
    this.output.destroy();
    this.input.destroy();
  }
}
