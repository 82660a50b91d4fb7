/**
 * The long-lived shim server of one namespace: subreaper of the monitors it starts, Task
 * service on a ttrpc unix socket, event publisher. On start it takes over what an earlier
 * shim of the namespace left (TaskService.recover). Exits on Shutdown once no container is
 * left (or at once with `now`: containers keep running under their monitors).
 */
import { writeSync, closeSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { ENV_CONMON } from '../shim-protocol.js';
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
  /** conmon binary (default: BERTH_CONMON, else conmon on PATH). */
  conmon?: string;
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
  let service: TaskService | undefined;
  const stop = async (): Promise<void> => {
    if (stopping) return done;
    stopping = true;
    // Requests are done by now (Shutdown replies first); peers that keep an idle connection
    // open (containerd waits for the shim to exit) must not hold the exit up for long.
    await server.close(250).catch(() => undefined);
    service?.stopPolling();
    // Exits are retried until delivered; a shim told to stop gives them 2 s (the next shim
    // finds them on disk unreported and sends them again).
    await Promise.race([publisher.flush(), new Promise((r) => setTimeout(r, 2000).unref())]);
    publisher.close();
    reaper.stop();
    rmSync(`${o.socket}.pid`, { force: true });
    resolveDone();
  };
  service = new TaskService({
    namespace: o.namespace,
    runcRootBase: o.runcRootBase ?? '/run/berth/runc',
    stateDir: dirname(o.socket),
    conmon: o.conmon ?? process.env[ENV_CONMON] ?? 'conmon',
    reaper,
    publisher,
    log,
    onShutdown: () => void stop(),
  });
  registerLean(server, TASK_SERVICE, service.handlers());
  await ensurePrivateDir(dirname(o.socket));
  await service.recover();
  await server.listen({ path: o.socket, mode: 0o600 });
  log.info('shim listening', { socket: o.socket, pid: process.pid });
  if (o.readyFd !== undefined) {
    writeSync(o.readyFd, 'ok\n');
    closeSync(o.readyFd);
  }
  return { service, publisher, server, reaper, done, stop };
}
