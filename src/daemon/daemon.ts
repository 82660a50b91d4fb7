/**
 * berthd wiring: config → stores → services → CRI server; signals; shutdown.
 * Only daemon/ and bin/ wire layers together.
 */
import { chmodSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, type Config } from './config.js';
import { log, setLogLevel, type LogLevel } from '../log.js';
import { openMetadata } from '../core/metadata/db.js';
import { startCriServer, type CriServer, type ImageHandlers, type RuntimeHandlers } from '../cri/server/server.js';
import { version } from '../cri/version.js';
import { status } from '../cri/status.js';
import { BERTH_VERSION } from '../version.js';
import { createServices, type Services } from './services.js';
import { planReload } from './reload.js';
import { notifier, takeNotifySocket, type Notifier } from './sd-notify.js';
import { limitMallocArenas } from './malloc.js';

const LEVELS: LogLevel[] = ['debug', 'info', 'warn', 'error'];

export interface DaemonOptions {
  configFile?: string;
  logLevel?: string;
  /** Config object instead of a file (tests). */
  config?: Config;
}

export interface ReloadResult {
  ok: boolean;
  /** Keys applied. */
  applied: string[];
  /** Changed keys that need a restart (not applied). */
  restart: string[];
  /** Why the file was refused (ok=false). */
  error?: string;
}

export interface Daemon {
  /** The running config (reloads change it). */
  readonly config: Config;
  services: Services;
  /** Re-read the config file and apply what can change at run time (SIGHUP). Never throws. */
  reload(): Promise<ReloadResult>;
  stop(): Promise<void>;
}

/** A config naming credentials must not be readable by others (warn; berthd still runs). */
function checkCredentialFile(file: string | undefined, config: Config): void {
  if (!file || Object.keys(config.registry.credentials).length === 0) return;
  try {
    const mode = statSync(file).mode & 0o777;
    if (mode & 0o077) log.warn('config file holds registry credentials but is readable by group or others; chmod 600 it', { file, mode: mode.toString(8) });
  } catch {
    /* read a moment ago; nothing to add */
  }
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
  checkCredentialFile(opts.configFile, config);
  const server: CriServer = await startCriServer({ socket: config.socket, runtime, image, berth, log, observer: services.rpcObserver });
  log.info('berthd serving', { version: BERTH_VERSION, socket: config.socket, root: config.root, state: config.state });

  let stopping: Promise<void> | undefined;
  let reloading: Promise<ReloadResult> = Promise.resolve({ ok: true, applied: [], restart: [] });
  const doReload = async (): Promise<ReloadResult> => {
    const file = opts.configFile;
    if (!file) {
      log.info('config reload: berthd runs on its embedded defaults (no --config file); nothing to reload');
      return { ok: true, applied: [], restart: [] };
    }
    let loaded: Config;
    try {
      loaded = loadConfig(file);
    } catch (err) {
      const error = (err as Error).message;
      log.error('config reload refused; the running config is unchanged', { file, error });
      return { ok: false, applied: [], restart: [], error };
    }
    checkCredentialFile(file, loaded);
    const pinned = new Set(opts.logLevel !== undefined ? ['log_level'] : []);
    const plan = planReload(services.config(), loaded, pinned);
    // The level is set here, around the report, so the report shows at the old or the new level.
    const newLevel = plan.apply.includes('log_level') ? (plan.next.log_level as LogLevel) : undefined;
    const oldLevel = services.config().log_level as LogLevel;
    try {
      await services.reconfigure(plan.next, new Set(plan.apply));
    } catch (err) {
      const error = (err as Error).message;
      log.error('config reload refused; the running config is unchanged', { file, error });
      return { ok: false, applied: [], restart: plan.restart, error };
    }
    const moreVerbose = newLevel !== undefined && LEVELS.indexOf(newLevel) < LEVELS.indexOf(oldLevel);
    if (newLevel && moreVerbose) setLogLevel(newLevel);
    if (plan.apply.includes('cni.conf_dir') || plan.apply.includes('cni.bin_dirs')) {
      // The conf dir is read on every call anyway; say what berthd sees there now.
      const s = await services.cni.status();
      log.info('CNI after reload', { conf_dir: plan.next.cni.conf_dir, ready: s.ready, network: s.network, message: s.message });
    }
    if (plan.restart.length > 0) {
      log.warn('config reload: these changes need a restart of berthd and are not applied', { file, keys: plan.restart.join(',') });
    }
    if (opts.logLevel !== undefined && loaded.log_level !== services.config().log_level) {
      log.info('config reload: log_level is set by --log-level; the file value is ignored', { file, file_log_level: loaded.log_level });
    }
    log.info('config reloaded', { file, applied: plan.apply.length ? plan.apply.join(',') : 'nothing changed' });
    if (newLevel && !moreVerbose) setLogLevel(newLevel);
    return { ok: true, applied: plan.apply, restart: plan.restart };
  };
  return {
    get config() {
      return services.config();
    },
    services,
    reload: () => (reloading = reloading.then(doReload, doReload)),
    stop: () =>
      (stopping ??= (async () => {
        await server.close();
        await services.close();
        db.close();
        log.info('berthd stopped');
      })()),
  };
}

/**
 * Foreground daemon: runs until SIGTERM/SIGINT, then finishes in-flight calls and exits 0.
 * SIGHUP reloads the config. Under systemd (Type=notify) it tells systemd READY=1 once the
 * CRI socket answers, RELOADING=1/READY=1 around a reload, and STOPPING=1 on the way out.
 */
export async function runDaemon(opts: DaemonOptions): Promise<void> {
  // Before any thread starts: see malloc.ts.
  limitMallocArenas();
  const sd: Notifier = notifier(takeNotifySocket(), (err) => log.warn('sd_notify failed', { error: err.message }));
  // Installed before start: a SIGHUP during start (Node's default would kill berthd) waits for it.
  let daemon: Daemon | undefined;
  let hupDuringStart = false;
  const onHup = () => {
    if (!daemon) {
      hupDuringStart = true;
      return;
    }
    log.info('signal received, reloading the config', { signal: 'SIGHUP' });
    const d = daemon;
    sd.notify('RELOADING=1');
    void d.reload().then((r) => {
      const status = r.ok ? 'config reloaded' : `config reload refused: ${r.error ?? ''}`.replace(/\s+/g, ' ').slice(0, 200);
      sd.notify(`READY=1\nSTATUS=${status}`);
    });
  };
  process.on('SIGHUP', onHup);
  const d = await startDaemon(opts);
  daemon = d;
  sd.notify(`READY=1\nSTATUS=serving on ${d.config.socket}\nMAINPID=${process.pid}`);
  if (hupDuringStart) onHup();
  const onSignal = (sig: NodeJS.Signals) => {
    log.info('signal received, shutting down', { signal: sig });
    sd.notify('STOPPING=1');
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
