/**
 * Recursive copy for the native snapshotter: every file is copied (never hard-linked to the
 * source, so snapshots stay independent), preserving owner, mode (incl. setuid/setgid/sticky),
 * xattrs, times, symlinks, devices and fifos; hard links inside the tree stay hard links.
 */
import { constants as fsc, type Stats } from 'node:fs';
import { chmod, copyFile, lchown, link, lstat, lutimes, mkdir, readdir, readlink, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { lgetxattr, llistxattr, lsetxattr, mknod, S_IFBLK, S_IFCHR, S_IFIFO } from '../unpack/sys.js';

function major(rdev: number): number {
  const d = BigInt(rdev);
  return Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn));
}

function minor(rdev: number): number {
  const d = BigInt(rdev);
  return Number((d & 0xffn) | ((d >> 12n) & ~0xffn));
}

function copyXattrs(src: string, dst: string): void {
  for (const name of llistxattr(src)) {
    const value = lgetxattr(src, name);
    if (value === null) continue;
    try {
      lsetxattr(dst, name, value);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // e.g. user.* is not allowed on symlinks and devices.
      if (code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EPERM') throw err;
    }
  }
}

async function setMeta(dst: string, st: Stats, src: string): Promise<void> {
  await lchown(dst, st.uid, st.gid);
  if (!st.isSymbolicLink()) await chmod(dst, st.mode & 0o7777);
  copyXattrs(src, dst);
  await lutimes(dst, st.atime, st.mtime);
}

/** Copies the contents of directory `src` into the existing directory `dst`. */
export async function copyTree(src: string, dst: string): Promise<void> {
  const links = new Map<string, string>();
  const dirs: Array<[string, Stats, string]> = [];
  const walk = async (s: string, d: string): Promise<void> => {
    for (const name of await readdir(s)) {
      const sp = join(s, name);
      const dp = join(d, name);
      const st = await lstat(sp);
      if (st.isDirectory()) {
        await mkdir(dp, { mode: 0o700 });
        await walk(sp, dp);
        dirs.push([dp, st, sp]);
        continue;
      }
      if (st.nlink > 1) {
        const first = links.get(`${st.dev}:${st.ino}`);
        if (first !== undefined) {
          await link(first, dp);
          continue;
        }
        links.set(`${st.dev}:${st.ino}`, dp);
      }
      if (st.isFile()) await copyFile(sp, dp, fsc.COPYFILE_EXCL);
      else if (st.isSymbolicLink()) await symlink(await readlink(sp), dp);
      else if (st.isCharacterDevice()) mknod(dp, S_IFCHR | (st.mode & 0o777), major(st.rdev), minor(st.rdev));
      else if (st.isBlockDevice()) mknod(dp, S_IFBLK | (st.mode & 0o777), major(st.rdev), minor(st.rdev));
      else if (st.isFIFO()) mknod(dp, S_IFIFO | (st.mode & 0o777));
      else continue; // sockets are not image content
      await setMeta(dp, st, sp);
    }
  };
  await walk(src, dst);
  // Directory metadata last: creating children changes mtimes, and a read-only dir mode
  // would block writing into it.
  for (const [dp, st, sp] of dirs) await setMeta(dp, st, sp);
  await setMeta(dst, await lstat(src), src);
}
