/**
 * TCP connections made inside a pod's network namespace, without a process per connection
 * (port-forward's data path).
 *
 * One worker thread (netns-socket-worker.ts) makes each socket in the pod's namespace and
 * hands back its fd; berthd's main thread wraps it in a net.Socket and connects it with libuv
 * (non-blocking, like any other connection), so a slow or refused connect blocks nothing. The
 * worker starts on first use and ends after IDLE_MS without requests. Where koffi cannot load
 * (no glibc), `available()` is false and callers use their fallback.
 */
import net from 'node:net';
import { Worker } from 'node:worker_threads';
import { errors } from '../errors.js';
import type { SocketReply, SocketRequest } from './netns-socket-worker.js';

const IDLE_MS = 30_000;

interface Pending {
  resolve: (fd: number) => void;
  reject: (err: Error) => void;
}

export class NetnsDialer {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private idleTimer: NodeJS.Timeout | undefined;
  private broken: string | undefined;

  /** An unconnected TCP socket fd made inside the namespace at `path`. */
  private socketIn(path: string, family: 4 | 6): Promise<number> {
    if (this.broken) return Promise.reject(errors.unavailable('netns.dialer', `cannot make sockets in pod network namespaces: ${this.broken}`));
    const w = this.start();
    clearTimeout(this.idleTimer);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      w.postMessage({ id, path, family } satisfies SocketRequest);
    });
  }

  private start(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(new URL('./netns-socket-worker.js', import.meta.url), {
      // The thread only makes syscalls: keep its heap small.
      resourceLimits: { maxOldGenerationSizeMb: 8, maxYoungGenerationSizeMb: 1, stackSizeMb: 1 },
      stdout: false,
      stderr: false,
    });
    w.unref();
    let ready = false;
    w.on('message', (r: SocketReply) => {
      if ('ready' in r) {
        ready = true;
        return;
      }
      const p = this.pending.get(r.id);
      this.pending.delete(r.id);
      if (this.pending.size === 0) this.armIdle();
      if (!p) return;
      if ('fd' in r) p.resolve(r.fd);
      else p.reject(errors.unavailable('netns.socket', `${r.error}${r.errno ? `: errno ${r.errno}` : ''}`));
    });
    const gone = (why: string): void => {
      if (this.worker !== w) return;
      this.worker = undefined;
      for (const p of this.pending.values()) p.reject(errors.unavailable('netns.dialer', `netns socket thread ended: ${why}`));
      this.pending.clear();
    };
    w.on('error', (err) => {
      // Failing before it was ready means koffi or libc cannot load: do not try again on
      // every connection. A later failure only ends this worker; the next request starts one.
      if (!ready) this.broken = err.message;
      gone(err.message);
    });
    w.on('exit', (code) => gone(`exit ${code}`));
    this.worker = w;
    return w;
  }

  private armIdle(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      if (this.pending.size > 0 || !this.worker) return;
      const w = this.worker;
      this.worker = undefined;
      void w.terminate();
    }, IDLE_MS);
    this.idleTimer.unref();
  }

  /**
   * Connects to `host`:`port` from inside the network namespace at `nsPath`; resolves with the
   * connected socket (allowHalfOpen), rejects with the connect error (ECONNREFUSED…).
   */
  async connect(nsPath: string, host: string, port: number): Promise<net.Socket> {
    const family = net.isIPv6(host) ? 6 : 4;
    const fd = await this.socketIn(nsPath, family);
    const sock = new net.Socket({ fd, readable: true, writable: true, allowHalfOpen: true });
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => {
        sock.destroy();
        reject(err);
      };
      sock.once('error', onError);
      sock.connect({ port, host }, () => {
        sock.off('error', onError);
        resolve(sock);
      });
    });
  }

  /** Ends the worker (daemon shutdown; tests). */
  async close(): Promise<void> {
    clearTimeout(this.idleTimer);
    const w = this.worker;
    this.worker = undefined;
    await w?.terminate();
  }

  /** False once the worker could not start (koffi or libc did not load): use a fallback. */
  get available(): boolean {
    return this.broken === undefined;
  }

  /** Whether the worker thread is running now (tests). */
  get running(): boolean {
    return this.worker !== undefined;
  }
}
