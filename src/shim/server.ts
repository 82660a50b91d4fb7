/**
 * The long-lived shim server: subreaper, Task service on a ttrpc unix socket, event publisher.
 * Exits on Shutdown once no container is left (or at once with `now`).
 */
import { writeSync, closeSync, rmSync, statSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { TtrpcServer, ensurePrivateDir } from '../ttrpc/server.js';
import { registerLean } from '../ttrpc/lean-service.js';
import { logger, setLogLevel, type Logger } from '../log.js';
import { Reaper } from './reaper.js';
import { Publisher, TtrpcEventSink, ExecEventSink, type EventSink } from './events.js';
import { TaskService, TASK_SERVICE } from './service.js';

export interface ServeOptions {
  namespace: string;
  socket: string;
  /** containerd/berthd main address (for the publish binary). */
  address: string;
  publishBinary: string;
  /** TTRPC_ADDRESS: the events ttrpc endpoint, preferred over the publish binary. */
  ttrpcAddress: string;
  debug: boolean;
  runcRootBase?: string;
  /** Write "ok" on this fd once listening, then close it (the `start` handshake). */
  readyFd?: number;
}

export interface RunningShim {
  service: TaskService;
  publisher: Publisher;
  server: TtrpcServer;
  reaper: Reaper;
  /** Resolves when the shim has shut down. */
  done: Promise<void>;
  stop(): Promise<void>;
}

export function eventSink(o: Pick<ServeOptions, 'ttrpcAddress' | 'publishBinary' | 'address' | 'namespace'>): EventSink | undefined {
  if (o.ttrpcAddress) return new TtrpcEventSink(o.ttrpcAddress, o.namespace);
  if (o.publishBinary && o.address) return new ExecEventSink(o.publishBinary, o.address, o.namespace);
  return undefined;
}

export async function serve(o: ServeOptions, log: Logger = logger({ component: 'berth-shim', ns: o.namespace })): Promise<RunningShim> {
  if (o.debug) setLogLevel('debug');
  const reaper = new Reaper();
  reaper.start();
  const publisher = new Publisher(eventSink(o), log);
  const server = new TtrpcServer({ logger: log });
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  let stopping = false;
  let bound: { dev: number; ino: number } | undefined;
  const stop = async (): Promise<void> => {
    if (stopping) return done;
    stopping = true;
    // Find our socket before closing: it may have been renamed (warm shim adopted by a group).
    const current = currentSocketPath(o.socket, bound);
    // Requests are done by now (Shutdown replies first); peers that keep an idle connection
    // open (containerd waits for the shim to exit) must not hold the exit up for long.
    await server.close(250).catch(() => undefined);
    await publisher.flush();
    publisher.close();
    reaper.stop();
    for (const p of new Set([o.socket, current])) {
      if (!p) continue;
      if (p !== o.socket) rmSync(p, { force: true });
      rmSync(`${p}.pid`, { force: true });
    }
    resolveDone();
  };
  const service = new TaskService({
    namespace: o.namespace,
    runcRootBase: o.runcRootBase ?? '/run/berth/runc',
    consoleDir: join(dirname(o.socket), 'console'),
    reaper,
    publisher,
    log,
    onShutdown: () => void stop(),
  });
  registerLean(server, TASK_SERVICE, service.handlers());
  await ensurePrivateDir(dirname(o.socket));
  await server.listen({ path: o.socket, mode: 0o600 });
  const st = statSync(o.socket);
  bound = { dev: st.dev, ino: st.ino };
  log.info('shim listening', { socket: o.socket, pid: process.pid });
  if (o.readyFd !== undefined) {
    writeSync(o.readyFd, 'ok\n');
    closeSync(o.readyFd);
  }
  return { service, publisher, server, reaper, done, stop };
}

/**
 * Where our listening socket lives now. berthd adopts a warm shim by renaming its socket file
 * to a group's socket path (the bound inode keeps working), so on exit the shim looks for the
 * socket by inode in its directory and removes that name.
 */
export function currentSocketPath(original: string, bound: { dev: number; ino: number } | undefined): string | undefined {
  if (!bound) return undefined;
  const same = (p: string): boolean => {
    try {
      const s = statSync(p);
      return s.isSocket() && s.dev === bound.dev && s.ino === bound.ino;
    } catch {
      return false;
    }
  };
  if (same(original)) return original;
  const dir = dirname(original);
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return undefined;
  }
  for (const n of names) {
    if (n.endsWith('.sock') && same(join(dir, n))) return join(dir, n);
  }
  return undefined;
}
