/**
 * The filesystem calls of the unpacker, done synchronously behind promise-shaped signatures.
 *
 * A layer is tens of thousands of tiny operations (lstat, open, write, fchown, fchmod,
 * futimes, close per file). Through fs/promises each one is a round trip to libuv's thread
 * pool, and an entry's operations are sequential, so unpacking was bound by thread hand-off
 * latency (measured: the main thread idle 12 of 16 s while pulling a 30k-file image). Direct
 * syscalls cost microseconds each and block the event loop only for one entry at a time.
 * The semantics are those of the fs/promises calls they replace (same errors, same flags).
 */
import * as fs from 'node:fs';

export function lstat(p: string): Promise<fs.Stats>;
export function lstat(p: string, o: { throwIfNoEntry: false }): Promise<fs.Stats | undefined>;
export async function lstat(p: string, o?: { throwIfNoEntry: false }): Promise<fs.Stats | undefined> {
  return o ? fs.lstatSync(p, o) : fs.lstatSync(p);
}
export const readlink = async (p: string): Promise<string> => fs.readlinkSync(p);
export const mkdir = async (p: string, o: { mode: number }): Promise<void> => void fs.mkdirSync(p, o);
export const chmod = async (p: string, mode: number): Promise<void> => fs.chmodSync(p, mode);
export const lchown = async (p: string, uid: number, gid: number): Promise<void> => fs.lchownSync(p, uid, gid);
export const lutimes = async (p: string, a: Date | number, m: Date | number): Promise<void> => fs.lutimesSync(p, a, m);
export const link = async (target: string, p: string): Promise<void> => fs.linkSync(target, p);
export const symlink = async (target: string, p: string): Promise<void> => fs.symlinkSync(target, p);
export const unlink = async (p: string): Promise<void> => fs.unlinkSync(p);
export const readdir = async (p: string): Promise<string[]> => fs.readdirSync(p);
export const rm = async (p: string, o: { recursive: boolean; force: boolean }): Promise<void> => fs.rmSync(p, o);

/** The subset of FileHandle the unpacker uses, on a plain fd. */
export class SyncHandle {
  constructor(private readonly fd: number) {}
  async write(chunk: Uint8Array): Promise<void> {
    let off = 0;
    while (off < chunk.byteLength) off += fs.writeSync(this.fd, chunk, off);
  }
  async chown(uid: number, gid: number): Promise<void> {
    fs.fchownSync(this.fd, uid, gid);
  }
  async chmod(mode: number): Promise<void> {
    fs.fchmodSync(this.fd, mode);
  }
  async utimes(a: Date | number, m: Date | number): Promise<void> {
    fs.futimesSync(this.fd, a, m);
  }
  async close(): Promise<void> {
    fs.closeSync(this.fd);
  }
}

export const open = async (p: string, flags: number, mode: number): Promise<SyncHandle> => new SyncHandle(fs.openSync(p, flags, mode));
