/**
 * Serving gRPC clients that send an HTTP/2 `:authority` Node refuses.
 *
 * grpc-go clients of the 1.51 era (kubelet and crictl of Kubernetes 1.26–1.28), grpc-java and
 * some Rust clients dial a unix socket with a passthrough target, so their `:authority` is the
 * socket path (`/run/berth/berth.sock`) or empty. nghttp2, under Node's HTTP/2 server, checks
 * `:authority` against the RFC 3986 authority characters and resets such a stream with
 * PROTOCOL_ERROR before grpc-js sees it; Node has no option to turn that check off.
 *
 * So the client→server bytes of each connection pass through `AuthorityFilter`: it reads the
 * HTTP/2 frames, decodes every header block (hpack.js, keeping the client's dynamic table), and
 * passes the frames through byte for byte while every authority is one nghttp2 accepts. At the
 * first block whose `:authority` (or `host`) would be refused, it starts re-encoding: that block
 * begins with a dynamic table size update to 0, so the server's decoder table is empty from
 * then on, and this and every later block is written as literals without indexing, with the
 * refused authority replaced by `localhost` (what newer grpc-go sends for unix sockets) and a
 * refused `host` dropped. The server→client direction is never touched.
 *
 * Moving every byte through JS costs each call several syscalls and stream hops, so
 * `acceptConnection` keeps the filter only for the connections that need it. It holds the
 * client's first bytes back, answers the client preface with an empty SETTINGS frame of its own
 * (grpc-go sends no request before the server's SETTINGS arrive) and waits for the first header
 * block: if its authority is one nghttp2 accepts, the held bytes (minus the client's ACK of that
 * SETTINGS frame, which the HTTP/2 server never sent) go back into the socket and the socket
 * itself goes to the HTTP/2 server, native from then on; otherwise the connection stays
 * filtered for its whole life. A client's authority is a property of its channel (grpc-go,
 * grpc-java, grpc-js, tonic), so the first block speaks for the connection; a client that
 * starts with an accepted authority and switches to a refused one on the same connection gets
 * nghttp2's stream reset, as without the filter.
 */
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

interface HpackHeader {
  name: string;
  value: string;
  neverIndex: boolean;
}
interface HpackDecompressor {
  write(chunk: Buffer): boolean;
  execute(): void;
  read(): HpackHeader | null;
  on(event: 'error', fn: (err: Error) => void): void;
}
const hpack = require('hpack.js') as { decompressor: { create(opts: { table: { maxSize: number } }): HpackDecompressor } };

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const FRAME_HEADER = 9;
const TYPE_HEADERS = 0x1;
const TYPE_SETTINGS = 0x4;
const TYPE_PING = 0x6;
const FLAG_ACK = 0x1;
const TYPE_PUSH_PROMISE = 0x5;
const TYPE_CONTINUATION = 0x9;
const FLAG_END_STREAM = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;
/** Frames we write: the minimum SETTINGS_MAX_FRAME_SIZE every HTTP/2 server accepts. */
const OUT_FRAME_MAX = 16_384;
/** A header block (HEADERS + CONTINUATIONs) bigger than this closes the connection. */
export const MAX_HEADER_BLOCK = 1024 * 1024;
/** The HPACK dynamic table size a client may use before the server says otherwise (RFC 7541). */
const DEFAULT_TABLE_SIZE = 4096;

/**
 * An authority nghttp2 accepts for sure: host (name, IPv4 or bracketed IPv6) and optional port.
 * nghttp2 allows a few more characters; anything outside this set is replaced, which is harmless
 * (grpc-js does not route on the authority).
 */
const SAFE_AUTHORITY = /^[A-Za-z0-9._~-]+(?::[0-9]*)?$|^\[[0-9A-Fa-f:.]+(?:%[A-Za-z0-9._~-]+)?\](?::[0-9]*)?$/;

export function authorityAccepted(value: string): boolean {
  return SAFE_AUTHORITY.test(value);
}

/** HPACK integer with an N-bit prefix (RFC 7541 §5.1), first byte ORed with `flags`. */
function hpackInt(out: number[], value: number, prefixBits: number, flags: number): void {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out.push(flags | value);
    return;
  }
  out.push(flags | max);
  let v = value - max;
  while (v >= 128) {
    out.push((v % 128) + 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
}

function hpackString(out: number[], s: string): void {
  const bytes = Buffer.from(s, 'latin1');
  hpackInt(out, bytes.length, 7, 0);
  for (const b of bytes) out.push(b);
}

/**
 * A header block that uses no dynamic table: literal without indexing (never-indexed kept),
 * new names, no Huffman. `resetTable` starts it with a table size update to 0.
 */
export function encodeLiteralBlock(headers: readonly HpackHeader[], resetTable: boolean): Buffer {
  const out: number[] = [];
  if (resetTable) hpackInt(out, 0, 5, 0x20);
  for (const h of headers) {
    out.push(h.neverIndex ? 0x10 : 0x00);
    hpackString(out, h.name);
    hpackString(out, h.value);
  }
  return Buffer.from(out);
}

/** Replace what nghttp2 would refuse; null when the block is fine as it is. */
export function fixHeaders(headers: readonly HpackHeader[]): HpackHeader[] | null {
  let changed = false;
  const out: HpackHeader[] = [];
  for (const h of headers) {
    if (h.name === ':authority' && !authorityAccepted(h.value)) {
      out.push({ name: ':authority', value: 'localhost', neverIndex: false });
      changed = true;
    } else if (h.name === 'host' && !authorityAccepted(h.value)) {
      changed = true;
    } else {
      out.push(h);
    }
  }
  return changed ? out : null;
}

function frameHeader(length: number, type: number, flags: number, stream: number): Buffer {
  const b = Buffer.alloc(FRAME_HEADER);
  b.writeUIntBE(length, 0, 3);
  b[3] = type;
  b[4] = flags;
  b.writeUInt32BE(stream & 0x7fffffff, 5);
  return b;
}

/**
 * The client→server byte filter of one connection. `feed` returns the bytes to hand to the
 * HTTP/2 server (possibly none yet: an incomplete frame or header block is held back).
 * Throws on a header block too large or one the re-encoding mode cannot decode.
 */
export class AuthorityFilter {
  private buf: Buffer = Buffer.alloc(0);
  private prefaceChecked = false;
  /** Stop parsing: something we do not understand, nghttp2 will judge it. */
  private raw = false;
  /** Every header block from now on is re-encoded (the server's table is empty). */
  private rewritingOn = false;
  private resetPending = false;
  private readonly decoder: HpackDecompressor;
  private decodeError: Error | undefined;
  /** Raw frames of the header block being collected, and its fragments. */
  private blockFrames: Buffer[] = [];
  private blockFragments: Buffer[] = [];
  private blockSize = 0;
  private blockStart: { stream: number; flags: number; priority: Buffer | undefined } | undefined;
  /** How many header blocks were re-encoded (for tests and the debug log). */
  rewritten = 0;
  /** Header blocks seen complete. */
  blocks = 0;
  /** PINGs seen (the client waits for their answer: keepalive). */
  pings = 0;
  /** Client SETTINGS ACKs still to drop (they answer a SETTINGS frame we sent ourselves). */
  private acksToDrop = 0;

  constructor(opts: { dropSettingsAcks?: number } = {}) {
    this.acksToDrop = opts.dropSettingsAcks ?? 0;
    this.decoder = hpack.decompressor.create({ table: { maxSize: DEFAULT_TABLE_SIZE } });
    this.decoder.on('error', (err) => {
      this.decodeError = err;
    });
  }

  /** The client preface has arrived whole and matched. */
  get prefaceSeen(): boolean {
    return this.prefaceChecked;
  }

  /** Re-encoding has started: the connection needs the filter from now on. */
  get rewriting(): boolean {
    return this.rewritingOn;
  }

  /** Parsing stopped (not HTTP/2, or something only nghttp2 should judge). */
  get passthrough(): boolean {
    return this.raw;
  }

  get settingsAcksPending(): number {
    return this.acksToDrop;
  }

  /** Stop filtering: the bytes held back (a partial frame or header block) are returned. */
  release(): Buffer[] {
    return this.goRaw([]);
  }

  feed(chunk: Buffer): Buffer[] {
    if (this.raw) return [chunk];
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const out: Buffer[] = [];
    if (!this.prefaceChecked) {
      const n = Math.min(this.buf.length, PREFACE.length);
      if (!this.buf.subarray(0, n).equals(PREFACE.subarray(0, n))) return this.goRaw(out);
      if (this.buf.length < PREFACE.length) return out;
      out.push(this.buf.subarray(0, PREFACE.length));
      this.buf = this.buf.subarray(PREFACE.length);
      this.prefaceChecked = true;
    }
    while (this.buf.length >= FRAME_HEADER) {
      const length = this.buf.readUIntBE(0, 3);
      if (this.buf.length < FRAME_HEADER + length) break;
      const frame = this.buf.subarray(0, FRAME_HEADER + length);
      this.buf = this.buf.subarray(FRAME_HEADER + length);
      this.onFrame(frame, out);
      if (this.raw) return this.goRaw(out);
    }
    return out;
  }

  private goRaw(out: Buffer[]): Buffer[] {
    this.raw = true;
    for (const f of this.blockFrames) out.push(f);
    this.blockFrames = [];
    if (this.buf.length) out.push(this.buf);
    this.buf = Buffer.alloc(0);
    return out;
  }

  private onFrame(frame: Buffer, out: Buffer[]): void {
    const type = frame[3]!;
    const flags = frame[4]!;
    const stream = frame.readUInt32BE(5) & 0x7fffffff;
    const payload = frame.subarray(FRAME_HEADER);
    if (this.blockStart) {
      // Inside a header block only CONTINUATION of the same stream may come (RFC 9113 §6.10);
      // anything else is nghttp2's connection error to give.
      if (type !== TYPE_CONTINUATION || stream !== this.blockStart.stream) {
        if (this.rewritingOn) throw new Error('HTTP/2 header block interrupted by another frame');
        this.blockFrames.push(frame);
        this.raw = true;
        return;
      }
      this.addFragment(frame, payload);
      if (flags & FLAG_END_HEADERS) this.endBlock(out);
      return;
    }
    if (type === TYPE_PUSH_PROMISE) {
      // Clients never send it (a connection error for the server); its block would desync us.
      if (this.rewritingOn) throw new Error('HTTP/2 PUSH_PROMISE from a client');
      out.push(frame);
      this.raw = true;
      return;
    }
    if (type !== TYPE_HEADERS) {
      if (type === TYPE_SETTINGS && flags & FLAG_ACK && stream === 0 && payload.length === 0 && this.acksToDrop > 0) {
        this.acksToDrop--;
        return;
      }
      if (type === TYPE_PING && !(flags & FLAG_ACK)) this.pings++;
      out.push(frame);
      return;
    }
    let off = 0;
    let padding = 0;
    if (flags & FLAG_PADDED) {
      padding = payload[0] ?? 0;
      off = 1;
    }
    let priority: Buffer | undefined;
    if (flags & FLAG_PRIORITY) {
      priority = payload.subarray(off, off + 5);
      off += 5;
    }
    if (off + padding > payload.length) {
      if (this.rewritingOn) throw new Error('HTTP/2 HEADERS frame with bad padding');
      out.push(frame);
      this.raw = true;
      return;
    }
    this.blockStart = { stream, flags, priority };
    this.addFragment(frame, payload.subarray(off, payload.length - padding));
    if (flags & FLAG_END_HEADERS) this.endBlock(out);
  }

  private addFragment(frame: Buffer, fragment: Buffer): void {
    this.blockSize += fragment.length;
    if (this.blockSize > MAX_HEADER_BLOCK) throw new Error(`HTTP/2 header block larger than ${MAX_HEADER_BLOCK} bytes`);
    this.blockFrames.push(frame);
    this.blockFragments.push(fragment);
  }

  private endBlock(out: Buffer[]): void {
    const start = this.blockStart!;
    const frames = this.blockFrames;
    const block = Buffer.concat(this.blockFragments);
    this.blockStart = undefined;
    this.blockFrames = [];
    this.blockFragments = [];
    this.blockSize = 0;

    const headers = this.decode(block);
    this.blocks++;
    if (!headers) {
      if (this.rewritingOn) throw new Error('HTTP/2 header block that HPACK cannot decode');
      // Not decodable by us: let nghttp2 judge the original bytes, and stop parsing.
      for (const f of frames) out.push(f);
      this.raw = true;
      return;
    }
    const fixed = fixHeaders(headers);
    if (!this.rewritingOn && !fixed) {
      for (const f of frames) out.push(f);
      return;
    }
    if (!this.rewritingOn) {
      this.rewritingOn = true;
      this.resetPending = true;
    }
    this.rewritten++;
    const encoded = encodeLiteralBlock(fixed ?? headers, this.resetPending);
    this.resetPending = false;
    this.writeBlock(out, start, encoded);
  }

  private decode(block: Buffer): HpackHeader[] | null {
    this.decodeError = undefined;
    const headers: HpackHeader[] = [];
    try {
      this.decoder.write(block);
      this.decoder.execute();
    } catch (err) {
      this.decodeError = err as Error;
    }
    for (let h = this.decoder.read(); h !== null; h = this.decoder.read()) headers.push(h);
    return this.decodeError ? null : headers;
  }

  private writeBlock(out: Buffer[], start: { stream: number; flags: number; priority: Buffer | undefined }, block: Buffer): void {
    const prio = start.priority ?? Buffer.alloc(0);
    const firstRoom = OUT_FRAME_MAX - prio.length;
    const first = block.subarray(0, firstRoom);
    let rest = block.subarray(first.length);
    let flags = start.flags & (FLAG_END_STREAM | FLAG_PRIORITY);
    if (rest.length === 0) flags |= FLAG_END_HEADERS;
    out.push(frameHeader(prio.length + first.length, TYPE_HEADERS, flags, start.stream), prio, first);
    while (rest.length) {
      const part = rest.subarray(0, OUT_FRAME_MAX);
      rest = rest.subarray(part.length);
      out.push(frameHeader(part.length, TYPE_CONTINUATION, rest.length === 0 ? FLAG_END_HEADERS : 0, start.stream), part);
    }
  }
}

/**
 * The socket as the HTTP/2 server sees it: reads go through an AuthorityFilter, writes go
 * straight to the socket. Backpressure follows the reader; closing either side closes both.
 * `filter` and `held` carry on from acceptConnection (the filter's state and the bytes it
 * already let through).
 */
export class FilteredConnection extends Duplex {
  private readonly authority: AuthorityFilter;

  constructor(
    private readonly socket: Socket,
    filter?: AuthorityFilter,
    held: readonly Buffer[] = [],
  ) {
    super({ allowHalfOpen: false });
    this.authority = filter ?? new AuthorityFilter();
    for (const p of held) if (p.length) this.push(p);
    socket.on('data', (chunk: Buffer) => {
      let parts: Buffer[];
      try {
        parts = this.authority.feed(chunk);
      } catch (err) {
        this.destroy(err as Error);
        return;
      }
      let more = true;
      for (const p of parts) if (p.length) more = this.push(p) && more;
      if (!more) socket.pause();
    });
    socket.on('end', () => this.push(null));
    socket.on('error', (err) => this.destroy(err));
    socket.on('close', () => this.destroy());
    socket.resume();
  }

  get rewrittenBlocks(): number {
    return this.authority.rewritten;
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.socket.destroyed) {
      cb(new Error('connection closed'));
      return;
    }
    this.socket.write(chunk, (err) => cb(err ?? null));
  }

  /** The frames nghttp2 hands over together leave in one writev, not one syscall each. */
  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    if (this.socket.destroyed) {
      cb(new Error('connection closed'));
      return;
    }
    this.socket.cork();
    for (let i = 0; i < chunks.length - 1; i++) this.socket.write(chunks[i]!.chunk);
    this.socket.write(chunks[chunks.length - 1]!.chunk, (err) => cb(err ?? null));
    this.socket.uncork();
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.socket.end(() => cb());
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.socket.destroy();
    cb(err);
  }
}

/** An empty SETTINGS frame: a valid server preface that changes nothing (RFC 9113 §3.4). */
const EMPTY_SETTINGS = Buffer.from([0, 0, 0, TYPE_SETTINGS, 0, 0, 0, 0, 0]);
/** A connection with no first request by then stays filtered (it may still send a bad one). */
export const DECIDE_TIMEOUT_MS = 5000;

export type ConnectionMode = 'native' | 'filtered';

/**
 * Decide how to serve one accepted socket (see the top of this file) and hand it to `serve`:
 * the socket itself when its first header block needs no rewriting, else a FilteredConnection.
 * A client that closes or sends a header block we refuse before the decision is dropped.
 */
export function acceptConnection(socket: Socket, serve: (conn: Socket | FilteredConnection, mode: ConnectionMode) => void, decideMs = DECIDE_TIMEOUT_MS): void {
  const filter = new AuthorityFilter({ dropSettingsAcks: 1 });
  let held: Buffer[] = [];
  let settingsSent = false;
  const finish = (mode: ConnectionMode): void => {
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('end', onGone);
    socket.off('close', onGone);
    socket.off('error', onGone);
    socket.pause();
    if (mode === 'native') {
      held.push(...filter.release());
      const bytes = Buffer.concat(held);
      held = [];
      if (bytes.length) socket.unshift(bytes);
      serve(socket, 'native');
    } else {
      const conn = new FilteredConnection(socket, filter, held);
      held = [];
      serve(conn, 'filtered');
    }
  };
  const onData = (chunk: Buffer): void => {
    try {
      held.push(...filter.feed(chunk));
    } catch {
      socket.destroy();
      return;
    }
    if (filter.prefaceSeen && !settingsSent && !filter.passthrough) {
      settingsSent = true;
      socket.write(EMPTY_SETTINGS);
    }
    // A PING before the first request wants its answer now: only a served connection gives it.
    if (filter.rewriting || filter.pings > 0) return finish('filtered');
    // Not HTTP/2 or not parseable: nghttp2 judges the bytes (and closes the connection).
    if (filter.passthrough) return finish(filter.settingsAcksPending > 0 && settingsSent ? 'filtered' : 'native');
    if (filter.blocks > 0 && (!settingsSent || filter.settingsAcksPending === 0)) return finish('native');
  };
  const onGone = (): void => {
    clearTimeout(timer);
    socket.destroy();
  };
  const timer = setTimeout(() => finish('filtered'), decideMs);
  timer.unref();
  socket.on('data', onData);
  socket.on('end', onGone);
  socket.on('close', onGone);
  socket.on('error', onGone);
}
