/**
 * Persistent, named network namespaces for pod sandboxes.
 *
 * How: `unshare --net=<file> ip link set lo up`. util-linux's unshare creates a new network
 * namespace in a child process and bind-mounts its nsfs handle onto <file>, which keeps the
 * namespace alive after the process exits; the command it runs (`ip link set lo up`) already
 * runs inside the new namespace, so creation and bringing up loopback cost one spawn. berthd's
 * own threads never change namespace (setns/unshare in a Node process would move a libuv
 * thread and poison the thread pool).
 *
 * Like `ip netns`, the directory holding the handles (default /run/berth/netns) is made a
 * mount point with *shared* propagation. Mount namespaces cloned later (runc containers get a
 * slave copy of the host tree) then see our unmount when the pod is removed, so they do not
 * pin the namespace or make the handle file busy.
 *
 * remove(): lazy unmount (MNT_DETACH) of every mount stacked on the handle, then unlink.
 * Idempotent: a missing or already-unmounted handle is fine.
 */
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { errors } from '../errors.js';
import { runChecked, runCommand } from './proc.js';

export const DEFAULT_NETNS_DIR = '/run/berth/netns';

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

interface MountEntry {
  root: string;
  mountPoint: string;
  propagation: string[];
  fsType: string;
}

/** Mountinfo escapes space, tab, newline and backslash as octal (\040 etc.). */
function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export function parseMountInfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const fields = line.split(' ');
    const sep = fields.indexOf('-', 6);
    if (sep < 0 || fields.length < sep + 2) continue;
    out.push({
      root: unescapeMountPath(fields[3] ?? ''),
      mountPoint: unescapeMountPath(fields[4] ?? ''),
      propagation: fields.slice(6, sep),
      fsType: fields[sep + 1] ?? '',
    });
  }
  return out;
}

async function mounts(): Promise<MountEntry[]> {
  return parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
}

/** True when `path` has a network-namespace handle (an nsfs `net:[…]` mount) on it. */
export async function isNetns(path: string): Promise<boolean> {
  const abs = resolve(path);
  return (await mounts()).some((m) => m.mountPoint === abs && m.fsType === 'nsfs' && m.root.startsWith('net:['));
}

/**
 * The netns directories one owner (the pod host of a RuntimeContext, or one caller) has made
 * shared mount points: each is prepared once per owner, so two contexts in one process share
 * nothing.
 */
export class NetnsDirs {
  private readonly prepared = new Map<string, Promise<void>>();

  /** Makes `dir` a shared mount point (bind onto itself first if needed), once. */
  ensure(dir: string): Promise<void> {
    const abs = resolve(dir);
    let p = this.prepared.get(abs);
    if (!p) {
      p = prepareDir(abs);
      this.prepared.set(abs, p);
      p.catch(() => this.prepared.delete(abs));
    }
    return p;
  }
}

/** Makes `dir` a shared mount point (bind onto itself first if needed); `dirs` remembers it. */
export function ensureNetnsDir(dir: string, dirs: NetnsDirs = new NetnsDirs()): Promise<void> {
  return dirs.ensure(dir);
}

async function prepareDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const entries = (await mounts()).filter((m) => m.mountPoint === dir);
  const top = entries[entries.length - 1];
  if (top?.propagation.some((p) => p.startsWith('shared:'))) return;
  if (!top) await runChecked('mount', ['--bind', dir, dir], 'netns.dir_mount_failed');
  await runChecked('mount', ['--make-shared', dir], 'netns.dir_mount_failed');
}

export interface CreateNetnsOptions {
  /** Directory for namespace handles; default /run/berth/netns. */
  dir?: string;
  /** Timeout for the unshare process; default 10 s. */
  timeoutMs?: number;
  /** Directories already prepared by this caller (default: checked again). */
  dirs?: NetnsDirs;
}

/**
 * Creates a named network namespace with `lo` up and returns the handle path
 * (`<dir>/<name>`). AlreadyExists if the name is taken; on any failure nothing is left behind.
 */
export async function createNetns(name: string, opts: CreateNetnsOptions = {}): Promise<string> {
  if (!NAME_RE.test(name)) {
    throw errors.invalidArgument('netns.bad_name', `invalid network namespace name ${JSON.stringify(name)}`);
  }
  const dir = resolve(opts.dir ?? DEFAULT_NETNS_DIR);
  await ensureNetnsDir(dir, opts.dirs);
  const path = join(dir, name);
  try {
    // O_EXCL: two sandboxes can never share a handle, and an existing one is never clobbered.
    const fh = await open(path, 'wx', 0o444);
    await fh.close();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw errors.alreadyExists('netns.exists', `network namespace ${path} already exists`, err);
    }
    throw errors.internal('netns.create_failed', `create ${path}: ${(err as Error).message}`, err);
  }
  try {
    await runChecked('unshare', [`--net=${path}`, 'ip', 'link', 'set', 'lo', 'up'], 'netns.create_failed', opts.timeoutMs);
  } catch (err) {
    await removeNetns(path).catch(() => undefined);
    throw err;
  }
  return path;
}

/** Unmounts (lazily) and deletes a namespace handle. Succeeds if it is already gone. */
export async function removeNetns(path: string): Promise<void> {
  const abs = resolve(path);
  // A handle can carry stacked mounts (e.g. a crash between two attempts); peel all of them.
  for (let i = 0; i < 8; i++) {
    if (!(await mounts()).some((m) => m.mountPoint === abs)) break;
    const r = await runCommand('umount', ['--lazy', abs]);
    if (r.code !== 0 && (await mounts()).some((m) => m.mountPoint === abs)) {
      throw errors.internal('netns.remove_failed', `umount ${abs}: ${r.stderr.trim() || `exit ${r.code}`}`);
    }
  }
  try {
    await rm(abs, { force: true });
  } catch (err) {
    throw errors.internal('netns.remove_failed', `remove ${abs}: ${(err as Error).message}`, err);
  }
}

/** Throws NotFound unless `path` is a live network-namespace handle. */
export async function verifyNetns(path: string): Promise<void> {
  if (!(await isNetns(path))) {
    throw errors.notFound('netns.not_found', `network namespace ${path} does not exist`);
  }
}

/** Names of the live namespace handles in `dir` (for reconciling after a daemon restart). */
export async function listNetns(dir: string = DEFAULT_NETNS_DIR): Promise<string[]> {
  const abs = resolve(dir);
  return (await mounts())
    .filter((m) => m.fsType === 'nsfs' && m.root.startsWith('net:[') && dirname(m.mountPoint) === abs)
    .map((m) => m.mountPoint.slice(abs.length + 1))
    .sort();
}
