/**
 * Leak inventory for the fault tests (issue 12): everything a pod, container or pull of one
 * test berthd can leave on the host, read from the host itself (not from berthd's answers),
 * so that a test takes it before a fault and after recovery and compares.
 *
 * Kept: netns/namespace pin files, IPs host-local holds for the test network, mounts below
 * berthd's root and state, active snapshots and snapshot dirs without a row, task bundles,
 * runc containers, processes (conmon, runc, pause and container processes, a CNI plugin
 * left running; berth-shim separately: one per namespace may stay while berthd runs),
 * reserved names, sandbox and container records, and id-named dirs below root and state.
 * Plus helpers to drive BERTH_FAULT on a restartable test berthd.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import type { CriEnv } from './cri-env.js';
import { until } from './process.js';

export interface Inventory {
  pins: string[];
  ips: string[];
  mounts: string[];
  activeSnapshots: string[];
  orphanSnapshotDirs: string[];
  bundles: string[];
  runc: string[];
  /** `comm` of every process belonging to this berthd (berthd and berth-shim excluded). */
  processes: string[];
  shims: number;
  names: string[];
  sandboxes: string[];
  containers: string[];
  /** Paths below root/state (depth ≤ 3) whose last component is a 64-hex id. */
  idDirs: string[];
}

const HEX64 = /^[0-9a-f]{64}$/;

function ls(dir: string): string[] {
  try {
    return readdirSync(dir).sort();
  } catch {
    return [];
  }
}

function dbRows<T>(file: string, sql: string): T[] {
  if (!existsSync(file)) return [];
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return db.prepare(sql).all() as T[];
  } finally {
    db.close();
  }
}

function mountPoints(under: string[]): string[] {
  const decode = (s: string) => s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => decode(l.split(' ')[4] ?? ''))
    .filter((m) => under.some((d) => m.startsWith(`${d}/`)))
    .sort();
}

function idDirs(base: string, depth: number, skip: Set<string>): string[] {
  const out: string[] = [];
  for (const name of ls(base)) {
    const p = join(base, name);
    if (skip.has(p)) continue;
    if (HEX64.test(name) || /^rm-\d+$/.test(name)) out.push(p);
    else if (depth > 1) {
      try {
        if (statSync(p).isDirectory()) out.push(...idDirs(p, depth - 1, skip));
      } catch {
        /* gone */
      }
    }
  }
  return out;
}

interface Proc {
  pid: number;
  ppid: number;
  comm: string;
  cmdline: string[];
  environ: string;
  cgroup: string;
}

function processes(): Proc[] {
  const out: Proc[] = [];
  for (const p of readdirSync('/proc').filter((x) => /^\d+$/.test(x))) {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const fields = stat.slice(close + 2).split(' ');
      if (fields[0] === 'Z') continue;
      out.push({
        pid: Number(p),
        ppid: Number(fields[1]),
        comm: stat.slice(stat.indexOf('(') + 1, close),
        cmdline: readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0'),
        environ: readFileSync(`/proc/${p}/environ`, 'utf8'),
        cgroup: readFileSync(`/proc/${p}/cgroup`, 'utf8'),
      });
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

/** The snapshotter's dir (overlayfs or native, whichever berthd uses). */
export function snapshotterRoot(env: CriEnv): string {
  const base = join(env.berthd.root, 'snapshots');
  return join(base, ls(base).find((d) => existsSync(join(base, d, 'metadata.db'))) ?? 'overlayfs');
}

/** The host-local data dir of the test network. */
export function ipamDir(env: CriEnv): string {
  return join(dirname(env.confDir), 'ipam', env.net.network);
}

export function inventory(env: CriEnv, extra: { pluginDirs?: string[] } = {}): Inventory {
  const { root, state } = env.berthd;
  const meta = join(root, 'meta.db');
  const sandboxes = dbRows<{ id: string; record: string }>(meta, 'SELECT id, record FROM sandboxes').map((r) => {
    const rec = JSON.parse(r.record) as { state: string; extra?: { phase?: string } };
    return `${r.id} ${rec.state}${rec.extra?.phase === 'creating' ? ' creating' : ''}`;
  });
  const containers = dbRows<{ id: string; record: string }>(meta, 'SELECT id, record FROM containers').map(
    (r) => `${r.id} ${(JSON.parse(r.record) as { state: string }).state}`,
  );
  const names = dbRows<{ namespace: string; name: string; holder: string }>(meta, 'SELECT namespace, name, holder FROM names').map(
    (r) => `${r.namespace}/${r.name} ${r.holder}`,
  );
  const snapRoot = snapshotterRoot(env);
  const rows = dbRows<{ id: number; key: string; kind: string }>(join(snapRoot, 'metadata.db'), 'SELECT id, key, kind FROM snapshots');
  const rowIds = new Set(rows.map((r) => String(r.id)));
  const activeSnapshots = rows
    .filter((r) => r.kind !== 'committed')
    .map((r) => r.key)
    .sort();
  const orphanSnapshotDirs = ls(join(snapRoot, 'snapshots')).filter((d) => !rowIds.has(d));

  // This berthd's processes: named by its dirs (conmon's bundle args, runc --root, a plugin
  // run with its CNI_NETNS), in a cgroup named after one of its ids, or their descendants.
  const ids = new Set<string>();
  for (const l of [...sandboxes, ...containers, ...names]) for (const w of l.split(' ')) if (HEX64.test(w)) ids.add(w);
  for (const ns of ls(join(state, 'tasks'))) for (const id of ls(join(state, 'tasks', ns))) ids.add(id);
  for (const k of activeSnapshots) if (HEX64.test(k)) ids.add(k);
  const all = processes();
  const shimMark = `BERTH_SHIM_STATE_DIR=${join(state, 's')}`;
  const berthdPid = env.berthd.proc.pid;
  const marks = [env.berthd.dir, ...(extra.pluginDirs ?? [])];
  const mine = new Set<number>();
  for (const p of all) {
    if (p.pid === berthdPid || p.environ.split('\0').includes(shimMark)) continue;
    if (
      p.cmdline.some((a) => marks.some((m) => a.includes(m))) ||
      p.environ.includes(`CNI_NETNS=${join(state, 'netns')}`) ||
      [...ids].some((id) => p.cgroup.includes(id))
    )
      mine.add(p.pid);
  }
  for (let grew = true; grew;) {
    grew = false;
    for (const p of all) {
      if (!mine.has(p.pid) && mine.has(p.ppid) && p.pid !== berthdPid) {
        mine.add(p.pid);
        grew = true;
      }
    }
  }
  // berth-shim gives runc a root per namespace: <state>/runc/<namespace>.
  const runc = ls(join(state, 'runc')).flatMap((ns) =>
    spawnSync('runc', ['--root', join(state, 'runc', ns), 'list', '-q'], { encoding: 'utf8' })
      .stdout.split('\n')
      .filter(Boolean)
      .map((id) => `${ns}/${id}`),
  );

  return {
    pins: ls(join(state, 'netns')),
    ips: ls(ipamDir(env)).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)),
    mounts: mountPoints([root, state]).filter((m) => m !== join(state, 'netns')),
    activeSnapshots,
    orphanSnapshotDirs,
    bundles: ls(join(state, 'tasks')).flatMap((ns) => ls(join(state, 'tasks', ns)).map((id) => `${ns}/${id}`)),
    runc: runc.sort(),
    processes: all
      .filter((p) => mine.has(p.pid))
      .map((p) => `${p.comm}[${p.pid}]`)
      .sort(),
    shims: all.filter((p) => p.environ.split('\0').includes(shimMark)).length,
    names: names.sort(),
    sandboxes: sandboxes.sort(),
    containers: containers.sort(),
    idDirs: [...idDirs(root, 3, new Set([join(root, 'snapshots'), join(root, 'content')])), ...idDirs(state, 3, new Set([join(state, 'netns')]))].sort(),
  };
}

/** Differences between two inventories (berth-shim count may drop, not grow past one). */
export function leaks(before: Inventory, after: Inventory): string[] {
  const out: string[] = [];
  for (const k of Object.keys(before) as (keyof Inventory)[]) {
    if (k === 'shims') continue;
    const b = before[k] as string[];
    const a = after[k] as string[];
    const added = a.filter((x) => !b.includes(x));
    const gone = b.filter((x) => !a.includes(x));
    if (added.length) out.push(`${k}: left behind ${added.join(', ')}`);
    if (gone.length) out.push(`${k}: lost ${gone.join(', ')}`);
  }
  if (after.shims > Math.max(before.shims, 1)) out.push(`shims: ${after.shims} berth-shim processes (before: ${before.shims})`);
  return out;
}

/**
 * Waits until nothing leaks compared with `before` (processes and mounts settle
 * asynchronously after a kill), then returns the remaining differences (empty: none).
 */
export async function settledLeaks(env: CriEnv, before: Inventory, extra: { pluginDirs?: string[] } = {}, ms = 10_000): Promise<string[]> {
  // Polled every 200 ms, not 20: each look scans /proc and two databases.
  const end = Date.now() + ms;
  for (;;) {
    const last = leaks(before, inventory(env, extra));
    if (last.length === 0 || Date.now() > end) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Restarts berthd with `faults` as BERTH_FAULT ('' for none). `faultEnv` is the env object given to startBerthd. */
export async function restartWithFaults(env: CriEnv, faultEnv: Record<string, string>, faults: string): Promise<void> {
  await env.berthd.stop();
  faultEnv['BERTH_FAULT'] = faults;
  await env.berthd.restart();
}

/** Waits for berthd to die of SIGKILL (a `kill` fault fired), then starts it without faults. */
export async function awaitCrashAndRecover(env: CriEnv, faultEnv: Record<string, string>): Promise<void> {
  const p = env.berthd.proc;
  await until(() => p.signalCode !== null || p.exitCode !== null, 'berthd killed by its fault', 60_000);
  if (p.signalCode !== 'SIGKILL') throw new Error(`berthd ended with ${p.exitCode ?? p.signalCode}, not SIGKILL`);
  faultEnv['BERTH_FAULT'] = '';
  await env.berthd.restart();
}

/** Pause markers (BERTH_FAULT_DIR): wait for berthd to reach `step`, resume it by removing the marker. */
export async function awaitPause(dir: string, step: string, ms = 60_000): Promise<void> {
  await until(() => existsSync(join(dir, step)), `berthd paused at ${step}`, ms);
}
export function resume(dir: string, step: string): void {
  rmSync(join(dir, step), { force: true });
}

/** Writes `file` until its filesystem is full (ENOSPC): the disk-full fault tests' filler. */
export function fillFilesystem(file: string): void {
  const fd = openSync(file, 'a');
  const block = Buffer.alloc(4096, 0x5a);
  try {
    for (;;) writeSync(fd, block);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
}
