/**
 * Starts Debian's real `docker-registry` (distribution v2) on 127.0.0.1 for tests and benches.
 *
 * The registry listens on port 0 and we read the chosen port from its log line
 * ("listening on 127.0.0.1:PORT"): no race between picking a free port and binding it.
 * Every started registry is also killed when the test process exits, so a failed test
 * never leaves one behind.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:http';

export interface RegistryAuth {
  username: string;
  password: string;
}

export interface RegistryOptions {
  /** Enable htpasswd basic auth with this user. */
  auth?: RegistryAuth;
  /** Path of the registry binary (default /usr/bin/docker-registry). */
  binary?: string;
  /** Milliseconds to wait for /v2/ to answer (default 15000). */
  startTimeoutMs?: number;
}

export interface TestRegistry {
  /** 'http://127.0.0.1:PORT' */
  url: string;
  /** '127.0.0.1:PORT' */
  host: string;
  port: number;
  auth?: RegistryAuth;
  /** Directory holding config, storage and log. */
  dir: string;
  logFile: string;
  /** Kills the registry and removes its temp dir. Idempotent. */
  stop(): Promise<void>;
}

/** Registries not yet stopped: killed and removed if the test process exits first. */
const live = new Map<ChildProcess, { dir: string; pidFile: string }>();

/**
 * $0 binary, $1 config, $2 log, $3 pid file, $4 dir. fd 3 keeps our pipe for the watcher
 * subshell (asynchronous lists get /dev/null as stdin); the registry itself never sees it.
 */
const WATCHDOG = [
  'exec 3<&0 </dev/null',
  '"$0" serve "$1" >>"$2" 2>&1 3<&- & r=$!',
  'echo $r >"$3"',
  // On EOF: stop the registry, wait for it, remove the dir. If the registry dies first the
  // dir (and its log, for the error message) stays until stop() or our exit closes the pipe.
  '(cat <&3 >/dev/null; kill $r 2>/dev/null; while kill -0 $r 2>/dev/null; do sleep 0.1; done; rm -rf "$4") &',
  'exec 3<&-',
  'wait $r',
].join('\n');

function killPidFile(pidFile: string): void {
  const pid = Number(safeRead(pidFile).trim());
  if (Number.isInteger(pid) && pid > 1) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' handlers must be synchronous: a plain SIGKILL is all we can do there.
  process.on('exit', () => {
    for (const [child, { dir, pidFile }] of live) {
      killPidFile(pidFile);
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

export function registryAvailable(binary = '/usr/bin/docker-registry'): boolean {
  return spawnSync(binary, ['--version'], { stdio: 'ignore' }).status === 0;
}

function htpasswdLine(auth: RegistryAuth): string {
  // The registry only accepts bcrypt entries (-B).
  const r = spawnSync('htpasswd', ['-Bbn', auth.username, auth.password], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`htpasswd failed: ${r.stderr || r.error?.message}`);
  return r.stdout.trim() + '\n';
}

function configYaml(dir: string, auth: RegistryAuth | undefined): string {
  const lines = [
    'version: 0.1',
    'log:',
    '  level: info',
    '  formatter: text',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${join(dir, 'data')}`,
    '  delete:',
    '    enabled: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    '  addr: 127.0.0.1:0',
    // A fixed secret silences the warning and keeps upload state valid within one process.
    '  secret: berth-test-registry',
  ];
  if (auth) {
    lines.push('auth:', '  htpasswd:', '    realm: berth-test', `    path: ${join(dir, 'htpasswd')}`);
  }
  return lines.join('\n') + '\n';
}

function probe(url: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request(`${url}/v2/`, { method: 'GET', timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => resolve(0));
    req.on('timeout', () => {
      req.destroy();
      resolve(0);
    });
    req.end();
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function startRegistry(opts: RegistryOptions = {}): Promise<TestRegistry> {
  installExitHook();
  const binary = opts.binary ?? '/usr/bin/docker-registry';
  const dir = mkdtempSync(join(tmpdir(), 'berth-registry-'));
  const logFile = join(dir, 'registry.log');
  const configFile = join(dir, 'config.yml');
  if (opts.auth) writeFileSync(join(dir, 'htpasswd'), htpasswdLine(opts.auth), { mode: 0o600 });
  writeFileSync(configFile, configYaml(dir, opts.auth));

  // The registry runs under a tiny sh watchdog holding the read end of a pipe from us: when
  // this process dies in any way (even SIGKILL) the pipe closes, and the watchdog kills the
  // registry and removes its directory. So no registry outlives the test run.
  const pidFile = join(dir, 'registry.pid');
  const child = spawn('/bin/sh', ['-c', WATCHDOG, binary, configFile, logFile, pidFile, dir], {
    stdio: ['pipe', 'ignore', 'ignore'],
  });
  live.set(child, { dir, pidFile });
  let exited = false;
  const exitedP = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      resolve();
    });
  });
  child.once('error', () => {
    /* reported via the exit/timeout path below */
  });
  child.stdin?.on('error', () => undefined);

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    if (!exited) {
      child.stdin?.end(); // the watchdog sees EOF and stops the registry
      const t = setTimeout(() => {
        killPidFile(pidFile);
        child.kill('SIGKILL');
      }, 5000);
      await exitedP;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
    live.delete(child);
  };

  const deadline = Date.now() + (opts.startTimeoutMs ?? 15000);
  let port = 0;
  try {
    while (Date.now() < deadline) {
      if (exited) throw new Error(`docker-registry exited early:\n${safeRead(logFile)}`);
      if (port === 0) {
        const m = /listening on 127\.0\.0\.1:(\d+)/.exec(safeRead(logFile));
        if (m) port = Number(m[1]);
      }
      if (port !== 0) {
        const status = await probe(`http://127.0.0.1:${port}`);
        // 200 without auth, 401 with auth: either way the API is up.
        if (status === 200 || status === 401) {
          const host = `127.0.0.1:${port}`;
          return { url: `http://${host}`, host, port, auth: opts.auth, dir, logFile, stop };
        }
      }
      await sleep(50);
    }
    throw new Error(`docker-registry did not answer /v2/ in time:\n${safeRead(logFile)}`);
  } catch (err) {
    await stop();
    throw err;
  }
}

function safeRead(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}
