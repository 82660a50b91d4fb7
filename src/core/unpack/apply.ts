/**
 * applyLayer: extracts one uncompressed layer tar into a directory, computing its diffID.
 *
 * tar-reader.ts only parses; every filesystem write is done here, confined to the root through
 * RootResolver (see resolve.ts). Rules that keep a hostile layer inside the root:
 *  - entry paths are cleaned lexically against the root ("..", "/abs" stay inside);
 *  - parent directories are resolved component by component with lstat, symlinks followed
 *    only within the root; the final component is never followed (existing entries are removed
 *    first, files are opened O_EXCL|O_NOFOLLOW);
 *  - ownership/mode/xattrs/times go through the file handle or l* calls, never through a link;
 *  - hard links only to existing non-directory entries resolved inside the root;
 *  - uid/gid are unsigned 32-bit integers, anything else is rejected.
 *
 * Whiteouts: in `overlay` mode `.wh.NAME` becomes a 0/0 char device and `.wh..wh..opq` sets
 * trusted.overlay.opaque=y (the overlay kernel driver applies them); in `native` mode the root
 * already holds a copy of the lower layers, so NAME is deleted and an opaque dir loses every
 * child not written by this same layer.
 */
import { createHash } from 'node:crypto';
import { closeSync, constants as fsc, futimesSync, openSync, type Stats } from 'node:fs';
import { O_DIR_NOFOLLOW, openDirAt } from '../../fsat.js';
import { chmod, lchown, link, lstat, lutimes, mkdir, open, readdir, symlink, type SyncHandle } from './fsops.js';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { errors, isBerthError } from '../../errors.js';
import { RootResolver, cleanComponents, joinRel, removeAll, OPAQUE_XATTR, type PendingLowers } from './resolve.js';
import { lsetxattr, mknod, S_IFBLK, S_IFCHR, S_IFIFO } from './sys.js';
import { parseWhiteout } from './whiteout.js';
import { readTar, type TarHeader } from './tar-reader.js';

export type WhiteoutMode = 'overlay' | 'native';

export interface ApplyOptions {
  /** How whiteouts are written (default 'native'). */
  mode?: WhiteoutMode;
  /** overlay mode: the lower layer dirs, newest first (for parent lookups). */
  lowers?: readonly string[];
  /**
   * overlay mode, instead of `lowers`: the parent layer is still being unpacked; this resolves
   * to the lower dirs once it is committed, and is called only if a lookup needs them.
   */
  pendingLowers?: PendingLowers;
  /** Most uncompressed bytes the layer may have (default MAX_LAYER_BYTES). */
  maxBytes?: number;
}

/**
 * Default cap of a layer's uncompressed size: a gzip or zstd bomb (1000:1 and more) must not
 * fill the disk before the diffID check can reject it.
 */
export const MAX_LAYER_BYTES = 64 * 1024 ** 3;

export interface ApplyResult {
  /** Bytes of the uncompressed tar stream. */
  bytes: number;
  /** sha256 digest of the uncompressed tar stream (the layer's DiffID). */
  diffID: string;
  /**
   * Path work done (applyLayer only; to check it stays linear in the layer): lstat calls made
   * resolving parents, and directories read for native opaque markers.
   */
  work?: { pathLookups: number; dirReads: number };
}

type Header = TarHeader;

type Body = AsyncIterable<Uint8Array>;

const PATH_MAX = 4096;
const MAX_ID = 0xfffffffe; // 0xffffffff means "unchanged" to chown(2)

/** Parses a uid/gid strictly as an unsigned 32-bit integer. */
export function parseId(value: unknown, what: string): number {
  let n: number;
  if (typeof value === 'number') n = value;
  else if (typeof value === 'string' && /^[0-9]{1,10}$/.test(value)) n = Number(value);
  else n = NaN;
  if (!Number.isSafeInteger(n) || n < 0 || n > MAX_ID) {
    throw errors.invalidArgument('unpack.bad_id', `invalid ${what} ${JSON.stringify(value)} (must be 0..${MAX_ID})`);
  }
  return n;
}

function mtimeOf(h: Header): number {
  const pax = h.pax?.mtime;
  if (pax !== undefined && /^-?[0-9]+(\.[0-9]+)?$/.test(pax)) return Number(pax);
  return h.mtime ? h.mtime.getTime() / 1000 : 0;
}

/** xattrs from PAX records: SCHILY.xattr.NAME=value and LIBARCHIVE.xattr.NAME(url-enc)=base64. */
function xattrsOf(h: Header): Array<[string, Buffer]> {
  const out: Array<[string, Buffer]> = [];
  if (h.paxBytes === null) return out;
  for (const [k, v] of h.paxBytes) {
    let name: string;
    let value: Buffer;
    if (k.startsWith('SCHILY.xattr.')) {
      name = k.slice('SCHILY.xattr.'.length);
      // The raw bytes: values such as security.capability are binary.
      value = Buffer.from(v);
    } else if (k.startsWith('LIBARCHIVE.xattr.')) {
      name = decodeURIComponent(k.slice('LIBARCHIVE.xattr.'.length));
      value = Buffer.from(v.toString('latin1'), 'base64');
    } else continue;
    // Overlay's own attributes would let a layer forge opaque dirs or redirects.
    if (name.startsWith('trusted.overlay.')) continue;
    out.push([name, value]);
  }
  return out;
}

/** lsetxattr errors that mean the layer's attribute is wrong (name, value, or file type), not the host. */
const BAD_XATTR_CODES = new Set(['EINVAL', 'EPERM', 'ERANGE', 'E2BIG']);

function setXattrs(abs: string, xattrs: Array<[string, Buffer]>, entry: string): void {
  for (const [name, value] of xattrs) {
    try {
      lsetxattr(abs, name, value);
    } catch (err) {
      // The filesystem or file type may not support the namespace (e.g. user.* on a fifo).
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOTSUP' || code === 'EOPNOTSUPP') continue;
      // A malformed security.capability value, user.* on a symlink, an over-long name: the
      // layer is invalid (found by fuzzing; was a bare errno error, INTERNAL on PullImage).
      if (code !== undefined && BAD_XATTR_CODES.has(code)) {
        throw errors.invalidArgument(
          'unpack.bad_xattr',
          `invalid layer tar: entry ${JSON.stringify(entry)}: extended attribute ${JSON.stringify(name)} refused (${code})`,
          err,
        );
      }
      throw err;
    }
  }
}

/**
 * Passes the chunks of `src` on, hashing and counting them (the layer's DiffID and size), and
 * stops a layer that inflates past `maxBytes`.
 */
class Hasher {
  readonly hash = createHash('sha256');
  bytes = 0;

  constructor(private readonly maxBytes: number) {}

  async *through(src: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    for await (const chunk of src) {
      this.bytes += chunk.length;
      if (this.bytes > this.maxBytes) {
        throw errors.resourceExhausted('unpack.layer_too_large', `layer inflates to more than ${this.maxBytes} bytes`);
      }
      this.hash.update(chunk);
      yield chunk;
    }
  }
}

async function lstatOrNull(abs: string): Promise<Stats | null> {
  try {
    return (await lstat(abs, { throwIfNoEntry: false })) ?? null;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

class LayerWriter {
  private readonly resolver: RootResolver;
  private readonly mode: WhiteoutMode;
  /** Paths written by this layer (native opaque dirs keep them). */
  private readonly written = new Set<string>();
  /**
   * Directory times are set last (creating children changes them), by root-relative real path:
   * `finish` re-resolves each one from the root fd, never through a symlink.
   */
  private readonly dirTimes: Array<[string, number]> = [];
  /** Directories this layer already made opaque (native mode). */
  private readonly opaqued = new Set<string>();
  dirReads = 0;

  get pathLookups(): number {
    return this.resolver.lstatCalls;
  }

  constructor(
    private readonly root: string,
    opts: ApplyOptions,
  ) {
    this.mode = opts.mode ?? 'native';
    this.resolver =
      this.mode === 'overlay' && opts.pendingLowers
        ? new RootResolver(root, [], opts.pendingLowers)
        : new RootResolver(root, this.mode === 'overlay' ? (opts.lowers ?? []) : []);
  }

  async entry(h: Header, body: Body): Promise<void> {
    // PATH_MAX: longer names cannot be created anyway, and the cap bounds per-entry path work.
    if (Buffer.byteLength(h.name) > PATH_MAX || Buffer.byteLength(h.linkname ?? '') > PATH_MAX) {
      throw errors.invalidArgument('unpack.path_too_long', `layer entry name or link target longer than ${PATH_MAX} bytes`);
    }
    // No path can hold a NUL byte; Node's fs throws a TypeError for one (found by fuzzing).
    if (h.name.includes('\0') || (h.linkname ?? '').includes('\0')) {
      throw errors.invalidArgument('unpack.bad_entry', `invalid layer tar: entry ${JSON.stringify(h.name)} has a NUL byte in its name or link target`);
    }
    const comps = cleanComponents(h.name);
    const base = comps.length > 0 ? comps[comps.length - 1]! : '';
    const wh = parseWhiteout(base);
    if (wh.kind !== 'none') {
      await drain(body);
      const parent = await this.resolver.resolveDir(comps.slice(0, -1), true);
      if (wh.kind === 'opaque') await this.opaque(parent!);
      else if (wh.kind === 'delete') await this.whiteout(parent!, wh.name);
      return;
    }

    if (comps.length === 0) {
      // The root itself ("./"): only directory metadata applies; anything else (e.g. a
      // symlink named ".") would replace the root and redirect every later entry.
      if (h.type !== 'directory') {
        throw errors.invalidArgument('unpack.invalid_path', `layer entry ${JSON.stringify(h.name)} of type ${h.type} names the root`);
      }
      await drain(body);
      await this.setMeta(this.root, h, true);
      return;
    }

    const parent = (await this.resolver.resolveDir(comps.slice(0, -1), true))!;
    const real = joinRel(parent, base);
    const abs = join(this.root, real);
    this.resolver.forget(parent, base);

    switch (h.type) {
      case 'directory': {
        await drain(body);
        const st = await lstatOrNull(abs);
        if (!st?.isDirectory()) {
          if (st) await this.remove(real, st);
          await mkdir(abs, { mode: 0o700 });
        }
        await this.setMeta(abs, h, true, real);
        break;
      }
      case 'file':
      case 'contiguous-file':
      case null:
      case undefined:
        await this.writeFile(real, abs, h, body);
        break;
      case 'symlink':
        await drain(body);
        // symlink(2) refuses an empty target with ENOENT (found by fuzzing: a bare errno error).
        if (!h.linkname) throw errors.invalidArgument('unpack.bad_entry', `invalid layer tar: symlink ${JSON.stringify(h.name)} has no target`);
        await this.replace(real);
        await symlink(h.linkname, abs);
        await this.setMeta(abs, h, false);
        break;
      case 'link':
        await drain(body);
        await this.hardlink(real, abs, h.linkname ?? '');
        break;
      case 'character-device':
      case 'block-device':
      case 'fifo': {
        await drain(body);
        await this.replace(real);
        const kind = h.type === 'fifo' ? S_IFIFO : h.type === 'block-device' ? S_IFBLK : S_IFCHR;
        mknod(abs, kind | ((h.mode ?? 0) & 0o777), h.devmajor ?? 0, h.devminor ?? 0);
        await this.setMeta(abs, h, false);
        break;
      }
      default:
        throw errors.invalidArgument('unpack.unsupported_entry', `unsupported tar entry type ${String(h.type)} for ${JSON.stringify(h.name)}`);
    }
    this.written.add(real);
  }

  /**
   * Sets the directory times collected during extraction (children no longer change them).
   * A later entry may have replaced a parent with a symlink (`a/`, `a/passwd/`, `a -> /etc`):
   * each directory is reopened component by component from the root with O_NOFOLLOW, and one
   * that is no longer a directory inside the root is skipped (it was removed with its parent).
   * The times go through the fd. Paths are visited in sorted order so that the fds of a shared
   * prefix are reused: one openat per directory.
   */
  async finish(): Promise<void> {
    if (this.dirTimes.length === 0) return;
    const times = new Map<string, number>();
    for (const [real, t] of this.dirTimes) times.set(real, t);
    const paths = [...times.keys()].sort();
    const rootFd = openSync(this.root, O_DIR_NOFOLLOW);
    // stack[i] is the fd of the first i+1 components of the previous path.
    const names: string[] = [];
    const fds: number[] = [];
    try {
      for (const real of paths) {
        const comps = real === '' ? [] : real.split('/');
        let common = 0;
        while (common < names.length && common < comps.length && names[common] === comps[common]) common++;
        while (fds.length > common) {
          closeSync(fds.pop()!);
          names.pop();
        }
        let ok = true;
        for (let i = common; i < comps.length; i++) {
          const parent = i === 0 ? rootFd : fds[i - 1]!;
          let fd: number;
          try {
            fd = openDirAt(parent, comps[i]!);
          } catch (err) {
            const code = (err as NodeJS.ErrnoException).code;
            if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') {
              ok = false;
              break;
            }
            throw err;
          }
          fds.push(fd);
          names.push(comps[i]!);
        }
        if (!ok) continue;
        const t = times.get(real)!;
        futimesSync(comps.length === 0 ? rootFd : fds[fds.length - 1]!, t, t);
      }
    } finally {
      for (const fd of fds) closeSync(fd);
      closeSync(rootFd);
    }
  }

  /** Removes whatever is at real path `real` (a later entry with the same name wins). */
  private async replace(real: string): Promise<void> {
    const st = await lstatOrNull(join(this.root, real));
    if (st) await this.remove(real, st);
  }

  private async remove(real: string, st: Stats): Promise<void> {
    await removeAll(join(this.root, real));
    // Only what depended on this entry leaves the path cache (its subtree, symlink resolutions).
    if (st.isDirectory() || st.isSymbolicLink()) this.resolver.removed(real);
  }

  private async writeFile(real: string, abs: string, h: Header, body: Body): Promise<void> {
    const flags = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW;
    let fh: SyncHandle;
    try {
      // Usually nothing is there yet: try first instead of an lstat per file.
      fh = await open(abs, flags, 0o600);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      await this.replace(real);
      fh = await open(abs, flags, 0o600);
    }
    try {
      for await (const chunk of body) await fh.write(chunk);
      // chown first: it clears setuid/setgid and file capabilities, which come after.
      await fh.chown(parseId(h.pax?.uid ?? h.uid ?? 0, 'uid'), parseId(h.pax?.gid ?? h.gid ?? 0, 'gid'));
      await fh.chmod((h.mode ?? 0o644) & 0o7777);
      setXattrs(abs, xattrsOf(h), h.name);
      const t = mtimeOf(h);
      await fh.utimes(t, t);
    } finally {
      await fh.close();
    }
  }

  /** Owner, mode (not for symlinks), xattrs and times of a non-regular entry, never via a link. */
  /** `real`: the root-relative resolved path of a directory ('' for the root). */
  private async setMeta(abs: string, h: Header, isDir: boolean, real = ''): Promise<void> {
    await lchown(abs, parseId(h.pax?.uid ?? h.uid ?? 0, 'uid'), parseId(h.pax?.gid ?? h.gid ?? 0, 'gid'));
    const st = await lstat(abs);
    if (!st.isSymbolicLink()) await chmod(abs, (h.mode ?? (isDir ? 0o755 : 0o644)) & 0o7777);
    setXattrs(abs, xattrsOf(h), h.name);
    const t = mtimeOf(h);
    if (isDir) this.dirTimes.push([real, t]);
    else await lutimes(abs, t, t);
  }

  private async hardlink(real: string, abs: string, linkname: string): Promise<void> {
    const target = cleanComponents(linkname);
    const fail = (why: string) => errors.invalidArgument('unpack.bad_hardlink', `hard link ${JSON.stringify(real)} -> ${JSON.stringify(linkname)}: ${why}`);
    if (target.length === 0) throw fail('target is the root');
    // Resolve without creating anything: the target must already exist inside this root.
    const parent = await this.resolver.resolveDir(target.slice(0, -1), false);
    if (parent === null) throw fail('target not found in layer');
    const targetReal = joinRel(parent, target[target.length - 1]!);
    if (targetReal === real) return;
    const tabs = join(this.root, targetReal);
    const st = await lstatOrNull(tabs);
    if (!st) throw fail('target not found in layer');
    if (st.isDirectory()) throw fail('target is a directory');
    await this.replace(real);
    // link(2) does not follow a symlink target, so this never reaches outside the root.
    await link(tabs, abs);
  }

  private async opaque(parent: string): Promise<void> {
    const dir = join(this.root, parent);
    if (this.mode === 'overlay') {
      lsetxattr(dir, OPAQUE_XATTR, Buffer.from('y'));
      this.resolver.markOpaque(parent);
      return;
    }
    // Native: once per directory and layer. After the first marker everything left in it was
    // written by this layer (a directory removed and made again since holds only this layer's
    // entries too), so a layer repeating the marker 1e5 times does not reread it each time.
    if (this.opaqued.has(parent)) return;
    this.opaqued.add(parent);
    this.dirReads++;
    for (const name of await readdir(dir)) {
      const child = joinRel(parent, name);
      if (this.written.has(child)) continue;
      const st = await lstatOrNull(join(dir, name));
      if (st) await this.remove(child, st);
    }
  }

  private async whiteout(parent: string, name: string): Promise<void> {
    const real = joinRel(parent, name);
    const abs = join(this.root, real);
    const st = await lstatOrNull(abs);
    if (st) await this.remove(real, st);
    if (this.mode === 'overlay') {
      mknod(abs, S_IFCHR, 0, 0);
      // A lower entry here (a symlink some resolution followed) is now whited out.
      this.resolver.removed(real);
    }
    this.written.delete(real);
  }
}

async function drain(body: Body): Promise<void> {
  for await (const _ of body) {
    // discard
  }
}

/**
 * Extracts the uncompressed layer tar `tarStream` into `root` and returns its size and diffID.
 * On error the root is left partially written; the caller discards the snapshot.
 */
export async function applyLayer(tarStream: Readable, root: string, opts: ApplyOptions = {}): Promise<ApplyResult> {
  const hasher = new Hasher(opts.maxBytes ?? MAX_LAYER_BYTES);
  const writer = new LayerWriter(root, opts);
  try {
    for await (const entry of readTar(hasher.through(tarStream))) {
      await writer.entry(entry.header, entry.body);
    }
    await writer.finish();
  } catch (err) {
    tarStream.destroy();
    if (isBerthError(err)) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === undefined && err instanceof Error && /tar|header/i.test(err.message)) {
      throw errors.invalidArgument('unpack.bad_tar', `invalid layer tar: ${err.message}`, err);
    }
    throw err;
  }
  return { bytes: hasher.bytes, diffID: 'sha256:' + hasher.hash.digest('hex'), work: { pathLookups: writer.pathLookups, dirReads: writer.dirReads } };
}
