/**
 * berthd wiring: config → stores → services → CRI server; signals; shutdown.
 * Only daemon/ and bin/ wire layers together.
 */
import { chmodSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, type Config } from './config.js';
import { log, setLogLevel, type LogLevel } from '../log.js';
import { openMetadata } from '../core/metadata/db.js';
import { startCriServer, type CriServer, type ImageHandlers, type RuntimeHandlers } from '../cri/server.js';
import { version } from '../cri/version.js';
import { status } from '../cri/status.js';
import { BERTH_VERSION } from '../version.js';
import { createServices, type Services } from './services.js';

export interface DaemonOptions {
  configFile?: string;
  logLevel?: string;
  /** Config object instead of a file (tests). */
  config?: Config;
}

export interface Daemon {
  config: Config;
  services: Services;
  stop(): Promise<void>;
}

/**
 * berthd's root and the stores under it (image layers with their setuid binaries, blobs,
 * container dirs) are 0700, at every start: a root that already existed (made by hand, by a
 * package, by an older berth) keeps whatever mode it had otherwise (CVE-2021-41103 class).
 */
export function tightenPrivateDirs(root: string): void {
  for (const d of [root, ...['snapshots', 'content', 'containers'].map((n) => join(root, n))]) {
    mkdirSync(d, { recursive: true, mode: 0o700 });
    const st = statSync(d);
    if (!st.isDirectory()) throw new Error(`${d} is not a directory`);
    if ((st.mode & 0o7777) !== 0o700) {
      chmodSync(d, 0o700);
      log.info('tightened the mode of a private directory', { dir: d, was: (st.mode & 0o7777).toString(8) });
    }
  }
}

export async function startDaemon(opts: DaemonOptions): Promise<Daemon> {
  const config = opts.config ?? loadConfig(opts.configFile);
  const level = (opts.logLevel ?? config.log_level) as LogLevel;
  if (!['debug', 'info', 'warn', 'error'].includes(level)) throw new Error(`--log-level: unknown level ${JSON.stringify(level)}`);
  setLogLevel(level);

  tightenPrivateDirs(config.root);
  mkdirSync(config.state, { recursive: true, mode: 0o711 });
  const db = openMetadata(join(config.root, 'meta.db'));
  const services = await createServices(config, db, log);

  const runtime: RuntimeHandlers = {
    version: version(),
    status: status(services.status),
    ...services.runtimeHandlers,
  };
  const image: ImageHandlers = { ...services.imageHandlers };
  const berth = services.berthHandlers;
  const server: CriServer = await startCriServer({ socket: config.socket, runtime, image, berth, log, observer: services.rpcObserver });
  log.info('berthd serving', { version: BERTH_VERSION, socket: config.socket, root: config.root, state: config.state });

  let stopping: Promise<void> | undefined;
  return {
    config,
    services,
    stop: () =>
      (stopping ??= (async () => {
        await server.close();
        await services.close();
        db.close();
        log.info('berthd stopped');
      })()),
  };
}

/** Foreground daemon: runs until SIGTERM/SIGINT, then finishes in-flight calls and exits 0. */
export async function runDaemon(opts: DaemonOptions): Promise<void> {
  const d = await startDaemon(opts);
  const onSignal = (sig: NodeJS.Signals) => {
    log.info('signal received, shutting down', { signal: sig });
    d.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error('shutdown failed', { error: err });
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
}
