/**
 * Reading files of an image from a container's rootfs snapshot before the container exists:
 * the snapshot's mounts go onto a private temp dir for a moment, the files are read through a
 * path resolved inside that root (symlinks never lead out), bounded, and the dir is unmounted.
 */
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { promisify } from 'node:util';
import { lstat, mkdtemp, open, readlink, rmdir } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { mountAll, unmount, type Mount } from '../../core/snapshots/index.js';
import { loadUserDb, MAX_USER_DB_BYTES, type BindRequest, type UserDb } from '../../oci/index.js';

const run = promisify(execFile);

const MAX_LINKS = 40;

/**
 * Resolves `path` inside `root` the way the container would see it: absolute symlinks are
 * re-rooted, `..` stops at the root. Returns the host path, or undefined when a component is
 * missing or there are too many links.
 */
export async function resolveInRoot(root: string, path: string): Promise<string | undefined> {
  const todo = path.split('/').filter((c) => c !== '' && c !== '.');
  const done: string[] = [];
  let links = 0;
  while (todo.length > 0) {
    const c = todo.shift()!;
    if (c === '..') {
      done.pop();
      continue;
    }
    const host = join(root, ...done, c);
    let st;
    try {
      st = await lstat(host);
    } catch {
      return undefined;
    }
    if (st.isSymbolicLink()) {
      if (++links > MAX_LINKS) return undefined;
      const target = await readlink(host);
      if (target.startsWith('/')) done.length = 0;
      todo.unshift(...target.split('/').filter((x) => x !== '' && x !== '.'));
      continue;
    }
    done.push(c);
  }
  return join(root, ...done);
}

/** Reads at most `max` bytes of a regular file inside `root`; undefined when absent. */
export async function readFileInRoot(root: string, path: string, max: number): Promise<string | undefined> {
  const host = await resolveInRoot(root, path);
  if (!host) return undefined;
  // Only a regular file is opened: opening an image's fifo or device node (a tape, a tty) as
  // root can have effects of its own.
  const pre = await lstat(host).catch(() => undefined);
  if (!pre?.isFile()) return undefined;
  // O_NOFOLLOW: the last component was resolved above; a swap to a symlink since then fails.
  const fh = await open(host, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch(() => undefined);
  if (!fh) return undefined;
  try {
    const st = await fh.stat();
    if (!st.isFile()) return undefined;
    const buf = Buffer.alloc(Math.min(st.size, max));
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    return buf.subarray(0, bytesRead).toString('utf8');
  } finally {
    await fh.close();
  }
}

/**
 * Mounts `mounts` on a temp dir read-only, nodev, nosuid, noexec (berthd only reads image files
 * there), runs fn(root), unmounts and removes the dir.
 */
export async function withMountedRootfs<T>(mounts: readonly Mount[], tmpParent: string, fn: (root: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpParent, 'rootfs-'));
  const safe = mounts.map((m) => ({ ...m, options: [...m.options.filter((o) => o !== 'rw'), 'ro', 'nodev', 'nosuid', 'noexec'] }));
  try {
    mountAll(safe, dir);
    try {
      return await fn(dir);
    } finally {
      unmount(dir, { detach: true, all: true });
    }
  } finally {
    await rmdir(dir).catch(() => undefined);
  }
}

/**
 * /etc/passwd + /etc/group of recently used images, by top chain id (bounded: the oldest go
 * first). An image's files never change (the chain id names its content). One per
 * RuntimeContext (ctx.userDbs).
 */
export class UserDbCache {
  private readonly byChain = new Map<string, UserDb>();
  constructor(private readonly max = 64) {}

  get(chainID: string): UserDb | undefined {
    return this.byChain.get(chainID);
  }

  set(chainID: string, db: UserDb): void {
    this.byChain.delete(chainID);
    this.byChain.set(chainID, db);
    if (this.byChain.size > this.max) this.byChain.delete(this.byChain.keys().next().value!);
  }

  get size(): number {
    return this.byChain.size;
  }
}

/** The image's /etc/passwd and /etc/group (bounded; absent files give an empty part). */
export async function readUserDb(root: string): Promise<UserDb> {
  const passwd = await readFileInRoot(root, posix.join('/etc', 'passwd'), MAX_USER_DB_BYTES);
  const group = await readFileInRoot(root, posix.join('/etc', 'group'), MAX_USER_DB_BYTES);
  return loadUserDb(passwd, group);
}

/**
 * Seeds each new image volume with what the image has at that path (containerd copies the
 * existing contents too), keeping owners and modes; symlinks are copied, not followed.
 */
export async function copyVolumeContents(root: string, volumes: readonly BindRequest[]): Promise<void> {
  for (const v of volumes) {
    const src = await resolveInRoot(root, v.containerPath);
    if (!src || !(await lstat(src)).isDirectory()) continue;
    await run('cp', ['-a', '--no-dereference', `${src}/.`, v.hostPath]);
  }
}
