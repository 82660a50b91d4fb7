/**
 * `berth logs`' file side: reading a container's CRI log file whole, and following it across
 * rotation and truncation. The records themselves are decoded by src/cri-log.ts (partial
 * records joined as bytes, decoded as whole lines).
 */
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { CriLogAssembler, type LogLine } from '../cri-log.js';

/**
 * Reads the first `size` bytes of `path` (the size at the time of the call) into lines.
 * Returns the assembler so a follower continues exactly where this read stopped, partial
 * records included.
 */
export function readLog(path: string): { lines: LogLine[]; size: number; asm: CriLogAssembler } {
  const asm = new CriLogAssembler();
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const buf = Buffer.allocUnsafe(1 << 16);
    const lines: LogLine[] = [];
    let offset = 0;
    while (offset < size) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, size - offset), offset);
      if (n === 0) break;
      offset += n;
      lines.push(...asm.push(buf.subarray(0, n)));
    }
    return { lines, size: offset, asm };
  } finally {
    closeSync(fd);
  }
}

/** Formats a line for the terminal (no trailing newline). */
export function formatLogLine(l: LogLine, timestamps: boolean): string {
  return timestamps ? `${l.time} ${l.text}` : l.text;
}

export interface FollowOptions {
  /** Called for every complete line after `startOffset`. */
  onLine(l: LogLine): void;
  /** Polled between reads; when it resolves true and no data is left, following stops. */
  shouldStop(): Promise<boolean> | boolean;
  pollMs?: number;
  signal?: AbortSignal;
}

/**
 * Follows a CRI log file from `startOffset`, surviving rotation (the file is renamed and a new
 * one created: a different inode) and truncation/reopen (size below our offset): either way we
 * finish the old descriptor and continue from the start of the new file.
 */
export async function followLog(path: string, startOffset: number, o: FollowOptions, asm: CriLogAssembler = new CriLogAssembler()): Promise<void> {
  const pollMs = o.pollMs ?? 200;
  let fd: number | undefined;
  let ino = -1;
  let offset = startOffset;
  const buf = Buffer.allocUnsafe(1 << 16);
  const open = (): boolean => {
    try {
      fd = openSync(path, 'r');
      ino = fstatSync(fd).ino;
      return true;
    } catch {
      fd = undefined;
      return false;
    }
  };
  const drain = (): boolean => {
    if (fd === undefined) return false;
    let any = false;
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, offset);
      if (n === 0) break;
      any = true;
      offset += n;
      for (const l of asm.push(buf.subarray(0, n))) o.onLine(l);
    }
    return any;
  };
  open();
  try {
    for (;;) {
      if (o.signal?.aborted) return;
      const got = drain();
      let rotated = false;
      try {
        const st = statSync(path);
        if (st.ino !== ino || st.size < offset) rotated = true;
      } catch {
        // Between rename and re-create there is no file; try again on the next poll.
      }
      if (rotated) {
        drain(); // anything written to the old file before it was renamed
        if (fd !== undefined) closeSync(fd);
        fd = undefined;
        asm.reset();
        offset = 0;
        open();
        continue;
      }
      if (fd === undefined) open();
      if (!got && (await o.shouldStop())) {
        // One last read: the writer may have flushed between our drain and the check.
        drain();
        return;
      }
      if (!got) await new Promise((r) => setTimeout(r, pollMs));
    }
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** The last `n` lines of `lines` (all when n is undefined). */
export function lastLines(lines: LogLine[], n: number | undefined): LogLine[] {
  return n === undefined ? lines : n === 0 ? [] : lines.slice(-n);
}
