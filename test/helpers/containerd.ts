/**
 * Test helpers for driving shims: RuntimeHarness (a TaskManager over a temp state dir with
 * both Debian's containerd-shim-runc-v2 and berth-shim as handlers, busybox containers with
 * private bind-mounted rootfs copies, event capture and full cleanup) and, below, a real
 * containerd daemon started on temp paths for interop tests.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, createReadStream, existsSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { TaskManager, type TaskEvents, type RuntimeHandler } from '../../src/runtime/index.js';
import { ociConfig, rootfsTemplate } from './bundle.js';
import { removeCgroupTreeSettled } from './cgroup.js';

export const repoRoot = resolve(import.meta.dirname, '../..', existsSync(resolve(import.meta.dirname, '../../package.json')) ? '' : '..');

export function readAll(path: string): Promise<string> {
  return new Promise((res, rej) => {
    const chunks: Buffer[] = [];
    const s = createReadStream(path);
    s.on('data', (d) => chunks.push(d as Buffer));
    s.on('end', () => res(Buffer.concat(chunks).toString('utf8')));
    s.on('error', rej);
  });
}

/** Everything one suite creates, and its cleanup. */
export class RuntimeHarness {
  readonly tmp = mkdtempSync('/tmp/brt-');
  readonly ns = `rt-${randomBytes(3).toString('hex')}`;
  readonly cgroupParent = `/berth-rt-${randomBytes(3).toString('hex')}`;
  readonly runcRoot = join(this.tmp, 'runc');
  readonly events: Array<{ name: keyof TaskEvents; e: unknown }> = [];
  readonly shimPids = new Set<number>();
  tm!: TaskManager;

  handlers(): Record<string, RuntimeHandler> {
    return {
      runc: { type: 'io.containerd.runc.v2', root: join(this.runcRoot, 'v2') },
      berth: { type: 'io.containerd.berth.v1', shim: join(repoRoot, 'bin/containerd-shim-berth-v1') },
    };
  }

  manager(extra: Partial<ConstructorParameters<typeof TaskManager>[0]> = {}): TaskManager {
    const tm = new TaskManager({
      stateDir: join(this.tmp, 'state'),
      rootDir: join(this.tmp, 'root'),
      handlers: this.handlers(),
      shimEnv: { BERTH_RUNC_ROOT: join(this.runcRoot, 'berth') },
      rpcTimeoutMs: 20_000,
      ...extra,
    });
    for (const name of ['exit', 'oom', 'create', 'start', 'delete', 'execAdded', 'execStarted', 'paused', 'resumed'] as const) {
      (tm.on as (n: string, l: (e: unknown) => void) => unknown).call(tm, name, (e) => this.events.push({ name, e }));
    }
    this.tm = tm;
    return tm;
  }

  /** A spec plus a bind-mounted private rootfs copy. */
  container(
    id: string,
    args: string[],
    annotations: Record<string, string> = {},
  ): { spec: Record<string, unknown>; rootfs: Array<{ type: string; source: string; options: string[] }> } {
    const src = join(this.tmp, 'rootfs', id);
    cpSync(rootfsTemplate(), src, { recursive: true, verbatimSymlinks: true });
    return { spec: ociConfig(id, { args, annotations, cgroupParent: this.cgroupParent }), rootfs: [{ type: 'bind', source: src, options: ['rbind', 'rw'] }] };
  }

  fifo(name: string): string {
    const p = join(this.tmp, name);
    execFileSync('mkfifo', [p]);
    return p;
  }

  async event<K extends keyof TaskEvents>(name: K, pred: (e: TaskEvents[K][0]) => boolean, timeoutMs = 10_000): Promise<TaskEvents[K][0]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.events.find((x) => x.name === name && pred(x.e as TaskEvents[K][0]));
      if (hit) return hit.e as TaskEvents[K][0];
      if (Date.now() > deadline) throw new Error(`no ${name} event; got ${this.events.map((x) => x.name).join(',')}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  async cleanup(): Promise<void> {
    await this.tm?.close().catch(() => undefined);
    for (const sub of ['v2', 'berth']) {
      const root = join(this.runcRoot, sub, this.ns);
      if (!existsSync(root)) continue;
      for (const id of readdirSync(root)) spawnSync('runc', ['--root', root, 'delete', '--force', id]);
    }
    // Shims of this run: every one got our events socket (under tmp) as -address.
    for (const pid of processesMentioning(this.tmp)) this.shimPids.add(pid);
    for (const pid of this.shimPids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    const mounts = execFileSync('sh', ['-c', `grep -o ' ${this.tmp}[^ ]*' /proc/self/mountinfo || true`], { encoding: 'utf8' })
      .split('\n')
      .map((s) => s.trim())
      .filter(Boolean)
      .sort((a, b) => b.length - a.length);
    for (const m of mounts) spawnSync('umount', ['-l', m]);
    await removeCgroupTreeSettled(this.cgroupParent);
    rmSync(this.tmp, { recursive: true, force: true });
    removeEmptyRunDirs();
  }
}

/** Pids whose command line contains `needle` (our shims carry the temp dir in their flags). */
export function processesMentioning(needle: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(needle)) out.push(Number(d));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** A real containerd (Debian's) on temp paths, CRI and unavailable plugins disabled. */
export class Containerd {
  readonly tmp = mkdtempSync('/tmp/bctd-');
  readonly address = join(this.tmp, 'containerd.sock');
  readonly ns = `ci-${randomBytes(3).toString('hex')}`;
  private proc: import('node:child_process').ChildProcess | undefined;
  private logText = '';

  get env(): NodeJS.ProcessEnv {
    return {
      ...process.env,
      // containerd finds containerd-shim-berth-v1 on PATH; berth-shim keeps sockets and runc state here.
      PATH: `${join(repoRoot, 'bin')}:${process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'}`,
      BERTH_SHIM_STATE_DIR: join(this.tmp, 's'),
      BERTH_RUNC_ROOT: join(this.tmp, 'berth-runc'),
    };
  }

  async start(): Promise<void> {
    const { spawn } = await import('node:child_process');
    const { writeFileSync } = await import('node:fs');
    const cfg = [
      'version = 2',
      `root = "${join(this.tmp, 'root')}"`,
      `state = "${join(this.tmp, 'state')}"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.internal.v1.tracing", "io.containerd.tracing.processor.v1.otlp"]',
      '[grpc]',
      `  address = "${this.address}"`,
      '[ttrpc]',
      `  address = "${this.address}.ttrpc"`,
      '[debug]',
      '  level = "info"',
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = "${join(this.tmp, 'opt')}"`,
      '',
    ].join('\n');
    writeFileSync(join(this.tmp, 'config.toml'), cfg);
    const p = spawn('containerd', ['--config', join(this.tmp, 'config.toml')], { env: this.env, stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc = p;
    p.stderr?.on('data', (d: Buffer) => {
      if (this.logText.length < 1_000_000) this.logText += d.toString();
    });
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (p.exitCode !== null) throw new Error(`containerd exited ${p.exitCode}: ${this.logText.slice(-2000)}`);
      if (existsSync(this.address) && this.ctr(['version']).code === 0) return;
      if (Date.now() > deadline) throw new Error(`containerd did not come up: ${this.logText.slice(-2000)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  get log(): string {
    return this.logText;
  }

  ctr(args: string[], timeoutMs = 60_000): { code: number | null; stdout: string; stderr: string } {
    const r = spawnSync('ctr', ['--address', this.address, '-n', this.ns, ...args], { env: this.env, encoding: 'utf8', timeout: timeoutMs });
    return { code: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  }

  /** A private busybox rootfs directory for `ctr run --rootfs`. */
  rootfs(name: string): string {
    const dir = join(this.tmp, 'rootfs', name);
    cpSync(rootfsTemplate(), dir, { recursive: true, verbatimSymlinks: true });
    return dir;
  }

  /** Stops containerd and removes everything it and its shims made. */
  async stop(): Promise<void> {
    // Containers left by a failed test: kill and delete through containerd while it runs.
    const list = this.ctr(['tasks', 'ls', '-q']).stdout.split('\n').filter(Boolean);
    for (const id of list) {
      this.ctr(['tasks', 'kill', '-s', 'SIGKILL', id]);
      this.ctr(['tasks', 'delete', '-f', id]);
    }
    for (const id of this.ctr(['containers', 'ls', '-q']).stdout.split('\n').filter(Boolean)) this.ctr(['containers', 'delete', id]);
    if (this.proc && this.proc.exitCode === null) {
      this.proc.kill('SIGTERM');
      await new Promise<void>((r) => {
        const t = setTimeout(() => {
          this.proc?.kill('SIGKILL');
          r();
        }, 5000);
        this.proc?.once('exit', () => {
          clearTimeout(t);
          r();
        });
      });
    }
    for (const pid of processesMentioning(this.tmp)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    for (const root of [join(this.tmp, 'berth-runc', this.ns), `/run/containerd/runc/${this.ns}`]) {
      if (!existsSync(root)) continue;
      for (const id of readdirSync(root)) spawnSync('runc', ['--root', root, 'delete', '--force', id]);
      rmSync(root, { recursive: true, force: true });
    }
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4] ?? '')
      .filter((m) => m.startsWith(this.tmp))
      .sort((a, b) => b.length - a.length);
    for (const m of mounts) spawnSync('umount', ['-l', m]);
    await removeCgroupTreeSettled(`/${this.ns}`);
    rmSync(this.tmp, { recursive: true, force: true });
    removeEmptyRunDirs();
  }
}

/** containerd-shim-runc-v2 creates /run/containerd/{s,runc}; drop them again when empty. */
export function removeEmptyRunDirs(): void {
  for (const d of ['/run/containerd/s', '/run/containerd/runc', '/run/containerd']) {
    try {
      rmdirSync(d);
    } catch {
      // not empty (in use) or absent
    }
  }
}
