/**
 * The CRI container log format (kubelet's), encoded and decoded in this one module:
 *
 *   <timestamp> <stdout|stderr> <tags> <content>\n
 *
 * The timestamp is RFC 3339 with up to nine fraction digits: berth writes UTC with `Z`; conmon
 * writes its local offset (`+00:00` on a UTC host). Tags are `:`-separated, `F` (the content
 * ends a line) or `P` (partial: the line goes on in the next record of the same stream; no
 * newline was written). The content is bytes: a P record may end in the middle of a multibyte
 * UTF-8 character, so records are joined as bytes and decoded only as whole lines.
 *
 * Writers: conmon, for containers of berth-shim (berth's own task layer); berthd itself
 * (core/logs/crilog.ts, CriLogFile) for shims that hand over raw stdio, such as
 * containerd-shim-runc-v2. Readers: `berth logs` (cli/crilog.ts) and attach to a container of
 * such a shim (cri/stream/backend.ts). A base module so every layer can use it; no I/O here.
 */

export const MAX_CRI_LINE = 16 * 1024;
export type CriStream = 'stdout' | 'stderr';

// --- encoding --------------------------------------------------------------------------------

/** Wall clock with nanosecond digits: re-anchored to Date every minute, hrtime in between. */
// Process-wide: one clock anchor per process (the clocks it reads are the process's).
let anchorNs = 0n;
let anchorHr = 0n;
export function nowNs(): bigint {
  const hr = process.hrtime.bigint();
  if (anchorNs === 0n || hr - anchorHr > 60_000_000_000n) {
    anchorNs = BigInt(Date.now()) * 1_000_000n;
    anchorHr = hr;
  }
  return anchorNs + (hr - anchorHr);
}

/** Go's time.RFC3339Nano in UTC (fraction without trailing zeros, omitted when zero). */
export function rfc3339Nano(ns: bigint): string {
  const ms = Number(ns / 1_000_000n);
  const iso = new Date(ms).toISOString(); // 2024-01-02T03:04:05.678Z
  const frac = (ns % 1_000_000_000n).toString().padStart(9, '0').replace(/0+$/, '');
  return iso.slice(0, 19) + (frac ? '.' + frac : '') + 'Z';
}

/** Format one record. `msg` must not contain the newline. */
export function criRecord(ts: string, stream: CriStream, partial: boolean, msg: Uint8Array): Buffer {
  const head = Buffer.from(`${ts} ${stream} ${partial ? 'P' : 'F'} `);
  return Buffer.concat([head, msg, Buffer.from('\n')]);
}

/**
 * Splits a byte stream into CRI records: one F record per line (a CR before the newline
 * dropped), a line longer than `maxLine` cut into P records with the last piece F, output
 * still unterminated at end() flushed as F. Feed chunks with push(); call end() at EOF.
 */
export class CriLineSplitter {
  private pending: Buffer[] = [];
  private pendingLen = 0;

  constructor(
    private readonly stream: CriStream,
    private readonly emit: (record: Buffer) => void,
    private readonly clock: () => string = () => rfc3339Nano(nowNs()),
    private readonly maxLine = MAX_CRI_LINE,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(0x0a, start);
      const end = nl === -1 ? chunk.length : nl;
      let piece = chunk.subarray(start, end);
      // Emit P records while the accumulated line is over the limit.
      while (this.pendingLen + piece.length > this.maxLine) {
        const take = this.maxLine - this.pendingLen;
        this.pending.push(piece.subarray(0, take));
        this.pendingLen += take;
        this.flush(true);
        piece = piece.subarray(take);
      }
      if (piece.length) {
        this.pending.push(piece);
        this.pendingLen += piece.length;
      }
      if (nl === -1) break;
      this.flush(false, true);
      start = nl + 1;
    }
  }

  end(): void {
    if (this.pendingLen > 0) this.flush(false);
  }

  private flush(partial: boolean, stripCr = false): void {
    let line = this.pending.length === 1 ? (this.pending[0] as Buffer) : Buffer.concat(this.pending);
    if (stripCr && line.length && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
    this.pending = [];
    this.pendingLen = 0;
    this.emit(criRecord(this.clock(), this.stream, partial, line));
  }
}

// --- decoding --------------------------------------------------------------------------------

/** One record as written: its content still bytes. */
export interface CriLogRecord {
  time: string;
  stream: CriStream;
  partial: boolean;
  content: Buffer;
}

const SP = 0x20;
const NL = 0x0a;

/**
 * One record from one line (its bytes, without the trailing newline); undefined when it is not
 * a record. The content keeps its own spaces; a line that ends after the tags has empty content.
 * The returned content is a view of `line`.
 */
export function parseCriLogLine(line: Buffer): CriLogRecord | undefined {
  const a = line.indexOf(SP);
  if (a <= 0) return undefined;
  const b = line.indexOf(SP, a + 1);
  if (b < 0) return undefined;
  const stream = line.toString('latin1', a + 1, b);
  if (stream !== 'stdout' && stream !== 'stderr') return undefined;
  const c = line.indexOf(SP, b + 1);
  const tags = line.toString('latin1', b + 1, c < 0 ? line.length : c);
  if (tags === '') return undefined;
  return {
    time: line.toString('latin1', 0, a),
    stream,
    partial: tags.split(':').includes('P'),
    content: c < 0 ? line.subarray(line.length) : line.subarray(c + 1),
  };
}

/**
 * The complete records in `buf` (lines that are not records skipped) and the bytes after the
 * last newline, to be put in front of the next chunk. Contents are copies, not views of `buf`.
 */
export function parseCriLog(buf: Buffer): { records: CriLogRecord[]; rest: Buffer } {
  const records: CriLogRecord[] = [];
  let start = 0;
  for (;;) {
    const nl = buf.indexOf(NL, start);
    if (nl < 0) break;
    const rec = parseCriLogLine(buf.subarray(start, nl));
    start = nl + 1;
    if (rec) records.push({ ...rec, content: Buffer.from(rec.content) });
  }
  return { records, rest: buf.subarray(start) };
}

/** A complete log line: partial records joined, then decoded; `time` is that of its first record. */
export interface LogLine {
  time: string;
  stream: CriStream;
  text: string;
}

/**
 * Joins partial records into whole lines, per stream (stdout and stderr records interleave),
 * from file bytes in any chunking. The bytes of a line are decoded as UTF-8 once the line is
 * whole, so a character split across records or chunks comes out intact.
 */
export class CriLogAssembler {
  private rest: Buffer = Buffer.alloc(0);
  private readonly pending = new Map<CriStream, { time: string; parts: Buffer[] }>();

  push(chunk: Uint8Array): LogLine[] {
    const { records, rest } = parseCriLog(this.rest.length ? Buffer.concat([this.rest, chunk]) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.rest = Buffer.from(rest);
    const out: LogLine[] = [];
    for (const rec of records) {
      const p = this.pending.get(rec.stream);
      if (rec.partial) {
        if (p) p.parts.push(rec.content);
        else this.pending.set(rec.stream, { time: rec.time, parts: [rec.content] });
        continue;
      }
      this.pending.delete(rec.stream);
      out.push({ time: p?.time ?? rec.time, stream: rec.stream, text: joinText(p ? [...p.parts, rec.content] : [rec.content]) });
    }
    return out;
  }

  /** Partial lines still waiting for their F record (the output's end had no newline). */
  flush(): LogLine[] {
    const out = [...this.pending.entries()].map(([stream, p]) => ({ time: p.time, stream, text: joinText(p.parts) }));
    this.pending.clear();
    return out;
  }

  /** A rotated file starts fresh: drop a half-written record of the old one. */
  reset(): void {
    this.rest = Buffer.alloc(0);
  }
}

function joinText(parts: Buffer[]): string {
  return (parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts)).toString('utf8');
}
