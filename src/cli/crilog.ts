/**
 * Reading CRI log files (the kubelet's format): one record per line,
 * `<RFC3339Nano time> <stdout|stderr> <tags> <content>`, tags `F` (full line) or `P` (partial:
 * the content continues in the next record of the same stream; no newline was written).
 */
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';

export interface CriLogRecord {
  time: string;
  stream: 'stdout' | 'stderr';
  partial: boolean;
  content: string;
}

/** One record from one line (without its trailing newline); undefined when malformed. */
export function parseCriLogLine(line: string): CriLogRecord | undefined {
  const a = line.indexOf(' ');
  if (a <= 0) return undefined;
  const b = line.indexOf(' ', a + 1);
  if (b < 0) return undefined;
  const stream = line.slice(a + 1, b);
  if (stream !== 'stdout' && stream !== 'stderr') return undefined;
  // Tags may be followed by content, or end the line when the content is empty.
  const c = line.indexOf(' ', b + 1);
  const tags = c < 0 ? line.slice(b + 1) : line.slice(b + 1, c);
  if (tags === '') return undefined;
  return { time: line.slice(0, a), stream, partial: tags.split(':').includes('P'), content: c < 0 ? '' : line.slice(c + 1) };
}

/** A complete log line: partial records joined; `time` is the time of its first record. */
export interface LogLine {
  time: string;
  stream: 'stdout' | 'stderr';
  text: string;
}

/**
 * Joins partial records into whole lines, per stream (stdout and stderr records interleave).
 * Feed it raw file bytes in any chunking.
 */
export class CriLogAssembler {
  private rest = '';
  private readonly pending = new Map<'stdout' | 'stderr', { time: string; text: string }>();
  private readonly decoder = new TextDecoder();

  push(chunk: Uint8Array): LogLine[] {
    const text = this.rest + this.decoder.decode(chunk, { stream: true });
    const lines = text.split('\n');
    this.rest = lines.pop() ?? '';
    const out: LogLine[] = [];
    for (const l of lines) {
      const rec = parseCriLogLine(l);
      if (!rec) continue;
      const p = this.pending.get(rec.stream);
      if (rec.partial) {
        this.pending.set(rec.stream, { time: p?.time ?? rec.time, text: (p?.text ?? '') + rec.content });
        continue;
      }
      this.pending.delete(rec.stream);
      out.push({ time: p?.time ?? rec.time, stream: rec.stream, text: (p?.text ?? '') + rec.content });
    }
    return out;
  }

  /** Partial content still waiting for its end (shown when a non-following read ends). */
  flush(): LogLine[] {
    const out = [...this.pending.entries()].map(([stream, p]) => ({ time: p.time, stream, text: p.text }));
    this.pending.clear();
    return out;
  }

  /** A rotated file starts fresh: drop a half line from the old one. */
  reset(): void {
    this.rest = '';
  }
}

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
