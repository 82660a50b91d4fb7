/**
 * Task bundles on disk, laid out like containerd's runtime v2:
 *   <state>/tasks/<ns>/<id>/   config.json, rootfs/, work → <root>/tasks/<ns>/<id>,
 *                              log (FIFO the runc shim writes its log to), task.json (berth),
 *                              address and shim.pid (written by the shim or by berthd).
 * The bundle directory is named after the task id because shims derive the id from it.
 */
import { chmod, chown, mkdir, rm, writeFile, readFile, symlink, readdir, lstat } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { errors } from '../errors.js';
import { unmount } from '../mount.js';
import { libc } from '../libc.js';

const run = promisify(execFile);

/** Persisted next to config.json: what berthd needs to reconnect or clean up without its DB. */
export interface TaskRecordFile {
  runtime: string;
  /** Group key the task was created with (shim sharing). */
  groupKey: string;
  createdAt: string;
}

export const TASK_FILE = 'task.json';

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** Namespace and id become path components: refuse anything that could escape the root. */
export function checkName(kind: 'namespace' | 'id', v: string): void {
  if (!NAME.test(v)) {
    throw errors.invalidArgument(
      kind === 'namespace' ? 'runtime.bad_namespace' : 'runtime.bad_id',
      `${kind} ${JSON.stringify(v)} is not valid (letters, digits, '_', '.', '-'; at most 128)`,
    );
  }
}

export interface BundlePaths {
  dir: string;
  work: string;
}

export function bundlePaths(stateDir: string, rootDir: string, ns: string, id: string): BundlePaths {
  checkName('namespace', ns);
  checkName('id', id);
  return { dir: join(stateDir, 'tasks', ns, id), work: join(rootDir, 'tasks', ns, id) };
}

/**
 * Who may enter a bundle dir (CVE-2021-41103): nobody but root, or else any local user could
 * run a setuid binary of a hostile image through <bundle>/rootfs. A container in a user
 * namespace must still reach its rootfs as its mapped root: the dir then belongs to the host
 * group the container's gid 0 maps to, mode 0710 (containerd does the same). A user namespace
 * that maps no gid 0 has no group to give the dir to: refused, never opened to everyone (0711).
 */
export function bundleAccess(spec: Record<string, unknown>): { mode: number; gid?: number } {
  const linux = spec.linux as
    { namespaces?: Array<{ type?: string }>; gidMappings?: Array<{ containerID?: number; hostID?: number; size?: number }> } | undefined;
  if (!linux?.namespaces?.some((n) => n.type === 'user')) return { mode: 0o700 };
  const root = linux.gidMappings?.find((m) => (m.containerID ?? -1) <= 0 && 0 < (m.containerID ?? 0) + (m.size ?? 0));
  if (root?.hostID === undefined) {
    throw errors.invalidArgument(
      'runtime.userns_no_root_gid',
      'linux.gidMappings: a user namespace must map container gid 0 (the bundle is reachable only by the host group it maps to)',
    );
  }
  return { mode: 0o710, gid: root.hostID };
}

/**
 * mkfifo(3) through libc (no process on the create or exec path: a spawn from berthd costs a
 * fork of its whole heap), `mkfifo` where koffi is missing. Mode 0600.
 */
export async function makeFifo(path: string): Promise<void> {
  let fn: ((p: string, mode: number) => number) | undefined;
  try {
    fn = mkfifoFn();
  } catch {
    fn = undefined;
  }
  if (!fn) {
    await run('mkfifo', ['-m', '0600', path]);
    return;
  }
  if (fn(path, 0o600) !== 0) throw new Error(`mkfifo ${path} failed`);
}

// Process-wide: libc mkfifo, bound once (koffi handles belong to the process).
let mkfifoCached: ((p: string, mode: number) => number) | undefined;
function mkfifoFn(): (p: string, mode: number) => number {
  mkfifoCached ??= libc().lib.func('int mkfifo(const char *path, uint32_t mode)') as (p: string, mode: number) => number;
  return mkfifoCached;
}

/** Creates the bundle; fails with AlreadyExists when a bundle for this id is present. */
export async function createBundle(p: BundlePaths, spec: Record<string, unknown>, rec: TaskRecordFile): Promise<void> {
  await mkdir(join(p.dir, '..'), { recursive: true, mode: 0o711 });
  const access = bundleAccess(spec);
  try {
    await mkdir(p.dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw errors.alreadyExists('runtime.task_exists', `task bundle ${p.dir} already exists`);
    }
    throw err;
  }
  try {
    if (access.gid !== undefined) await chown(p.dir, 0, access.gid);
    if (access.mode !== 0o700) await chmod(p.dir, access.mode);
    await mkdir(join(p.dir, 'rootfs'), { mode: 0o711 });
    await mkdir(p.work, { recursive: true, mode: 0o711 });
    await symlink(p.work, join(p.dir, 'work'));
    await writeFile(join(p.dir, 'config.json'), JSON.stringify(spec));
    await writeFile(join(p.dir, TASK_FILE), JSON.stringify(rec));
    // containerd-shim-runc-v2 opens "log" (O_WRONLY, no O_CREAT) when it serves: it must exist.
    await makeFifo(join(p.dir, 'log'));
  } catch (err) {
    await removeBundle(p).catch(() => undefined);
    throw err;
  }
}

export async function readTaskRecord(dir: string): Promise<TaskRecordFile | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, TASK_FILE), 'utf8')) as TaskRecordFile;
  } catch {
    return undefined;
  }
}

/** Mount points at or below `dir`, deepest first (from /proc/self/mountinfo). */
export function mountsUnder(dir: string): string[] {
  let text = '';
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    const mp = f[4];
    if (!mp) continue;
    // mountinfo escapes space, tab, newline and backslash as octal.
    const path = mp.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (path === dir || path.startsWith(dir + '/')) out.push(path);
  }
  return out.sort((a, b) => b.length - a.length);
}

/**
 * Removes the bundle and its work dir. The rootfs is unmounted first; if something stays
 * mounted the bundle is left in place, because a recursive delete would walk into the mount
 * and destroy the snapshot behind it.
 */
export async function removeBundle(p: BundlePaths): Promise<void> {
  for (const m of mountsUnder(p.dir)) {
    try {
      unmount(m, { all: true });
    } catch {
      unmount(m, { detach: true, all: true });
    }
  }
  const left = mountsUnder(p.dir);
  if (left.length > 0) {
    throw errors.failedPrecondition('runtime.bundle_mounted', `bundle ${p.dir} still has mounts: ${left.join(', ')}`);
  }
  await rm(p.dir, { recursive: true, force: true });
  await rm(p.work, { recursive: true, force: true });
}

/** Every bundle directory under <state>/tasks as [namespace, id]. */
export async function listBundles(stateDir: string): Promise<Array<[string, string]>> {
  const out: Array<[string, string]> = [];
  const root = join(stateDir, 'tasks');
  let nss: string[] = [];
  try {
    nss = await readdir(root);
  } catch {
    return out;
  }
  for (const ns of nss) {
    if (!NAME.test(ns)) continue;
    let ids: string[] = [];
    try {
      ids = await readdir(join(root, ns));
    } catch {
      continue;
    }
    for (const id of ids) {
      if (!NAME.test(id)) continue;
      const st = await lstat(join(root, ns, id)).catch(() => undefined);
      if (st?.isDirectory()) out.push([ns, id]);
    }
  }
  return out;
}
