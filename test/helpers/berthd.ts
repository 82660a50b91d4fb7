/**
 * Runs a real berthd (bin/berthd, the compiled daemon) on a temp socket with its own temp
 * root and state, as the integration tests' system under test.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connectCri, type CriClient } from '../../src/cri/server/client.js';

/** The repository root (works from test/ via tsx and from dist/test/ after tsc). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) || existsSync(join(dir, 'tsconfig.json')) === false) {
    const up = dirname(dir);
    if (up === dir) throw new Error('repository root not found');
    dir = up;
  }
  return dir;
}

export interface BerthdOptions {
  /** Extra TOML appended to the generated config. */
  extraToml?: string;
  mirrors?: Record<string, string[]>;
  logLevel?: string;
  /** Extra environment for berthd (e.g. NOTIFY_SOCKET). */
  env?: Record<string, string>;
  /** The berthd launcher to run (default: this checkout's bin/berthd), e.g. an installed one. */
  bin?: string;
}

export interface TestBerthd {
  dir: string;
  root: string;
  state: string;
  socket: string;
  configFile: string;
  logFile: string;
  cri: CriClient;
  proc: ChildProcess;
  /** SIGTERM and wait; returns the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait (simulates a crash). */
  kill9(): Promise<void>;
  /** Start again on the same root/state/socket. */
  restart(): Promise<void>;
  /** stop + remove the temp dir (idempotent). */
  cleanup(): Promise<void>;
  log(): string;
}

/**
 * Lazily unmount everything still mounted below `dir` (deepest first): the shared netns
 * directory berthd sets up (as `ip netns` does) and anything a failed test left behind.
 */
export function unmountUnder(dir: string): void {
  const decode = (s: string) => s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
  const points = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => decode(l.split(' ')[1] ?? ''))
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const m of points) spawnSync('umount', ['-l', m], { stdio: 'ignore' });
}

async function waitForSocket(path: string, proc: ChildProcess, logFile: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`berthd exited with ${proc.exitCode}:\n${readFileSync(logFile, 'utf8')}`);
    if (existsSync(path)) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  if (!existsSync(path)) throw new Error(`berthd did not create ${path} within ${timeoutMs} ms:\n${readFileSync(logFile, 'utf8')}`);
  // Ready means answering, as a client sees it: a daemon that dies right after binding (or a
  // refused first connection) must fail here with its log, not in the test's first call.
  let last = '';
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`berthd exited (${proc.exitCode ?? proc.signalCode}) after creating its socket:\n${readFileSync(logFile, 'utf8')}`);
    }
    const probe = connectCri(path);
    try {
      await probe.runtime.version({ version: 'v1' }, { timeoutMs: 2000 });
      return;
    } catch (err) {
      last = (err as Error).message;
    } finally {
      probe.close();
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`berthd did not answer on ${path} within ${timeoutMs} ms (${last}):\n${readFileSync(logFile, 'utf8')}`);
}

export async function startBerthd(o: BerthdOptions = {}): Promise<TestBerthd> {
  const dir = mkdtempSync(join(tmpdir(), 'berthd-test-'));
  // Traversable like /run is: containers in a user namespace (mapped root has no
  // CAP_DAC_OVERRIDE over host-owned dirs) must reach their bundle under the state dir.
  chmodSync(dir, 0o711);
  const root = join(dir, 'root');
  const state = join(dir, 'state');
  const socket = join(state, 'berth.sock');
  const configFile = join(dir, 'berth.toml');
  const logFile = join(dir, 'berthd.log');
  let toml = `root = "${root}"\nstate = "${state}"\nsocket = "${socket}"\nlog_level = "${o.logLevel ?? 'debug'}"\n`;
  for (const [host, endpoints] of Object.entries(o.mirrors ?? {})) {
    toml += `[registry.mirrors."${host}"]\nendpoints = [${endpoints.map((e) => JSON.stringify(e)).join(', ')}]\n`;
  }
  toml += o.extraToml ?? '';
  // Port 0: parallel daemons must not fight over the fixed default; the bound address is in <state>/metrics.addr.
  if (!/^\[metrics\]/m.test(toml)) toml += `[metrics]\naddress = "127.0.0.1:0"\n`;
  writeFileSync(configFile, toml);
  const bin = o.bin ?? join(repoRoot(), 'bin', 'berthd');

  const launch = async () => {
    // A crashed daemon leaves its socket file behind: only a fresh one means "ready".
    rmSync(socket, { force: true });
    const fd = openSync(logFile, 'a');
    const p = spawn(bin, ['--config', configFile], { stdio: ['ignore', fd, fd], ...(o.env ? { env: { ...process.env, ...o.env } } : {}) });
    closeSync(fd);
    await waitForSocket(socket, p, logFile);
    return p;
  };

  const t: TestBerthd = {
    dir,
    root,
    state,
    socket,
    configFile,
    logFile,
    proc: await launch(),
    cri: connectCri(socket),
    async stop() {
      const p = t.proc;
      if (p.exitCode !== null || p.signalCode !== null) return p.exitCode;
      const done = new Promise<number | null>((r) => p.once('exit', (code) => r(code)));
      p.kill('SIGTERM');
      const timer = setTimeout(() => p.kill('SIGKILL'), 15_000);
      const code = await done;
      clearTimeout(timer);
      return code;
    },
    async kill9() {
      const p = t.proc;
      if (p.exitCode !== null || p.signalCode !== null) return;
      const done = new Promise((r) => p.once('exit', r));
      p.kill('SIGKILL');
      await done;
    },
    async restart() {
      t.cri.close();
      t.proc = await launch();
      t.cri = connectCri(socket);
    },
    async cleanup() {
      t.cri.close();
      await t.stop();
      // Shims outlive berthd by design; after a kill -9 nothing else stops this test's ones.
      spawnSync('pkill', ['-KILL', '-f', dir], { stdio: 'ignore' });
      unmountUnder(dir);
      rmSync(dir, { recursive: true, force: true });
    },
    log: () => readFileSync(logFile, 'utf8'),
  };
  return t;
}
